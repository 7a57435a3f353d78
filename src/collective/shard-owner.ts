// Shard-owner all-reduce: member k owns shard k. Every member sends each owner its part of the
// owner's shard (reduce-scatter, n-1 messages per chunk), the owner sums them in member order and
// publishes the reduced chunk once to a fan-out subject that every member and observer receives.
// Two rounds; about n·G bytes into the server (DESIGN §4). Everyone ends with the owner's bytes.
import type { Algorithm } from './algorithm.ts';
import { ChunkSet } from './chunk-set.ts';
import { ContributionNorms } from './contributions.ts';
import type { MissingPart } from './errors.ts';
import { addMeasured, sumMeasured } from './float-sum.ts';
import { FrameKind } from './frame.ts';
import { roundToBf16 } from './gradient-encoding.ts';
import type { FramePayload } from './payload.ts';
import type { Round } from './round.ts';
import { returnScratch, takeScratch } from './scratch.ts';
import { dataSubject } from './subjects.ts';

export const shardOwner: Algorithm = {
  summary: 'n·G into the server, 2 hops',
  minMembers: 1,
  member: (round, data, result) => new ShardOwnerAllReduce(round, data, result),
  // Each owner's fan-out subject carries its own shard, which every member hears as well.
  observer: ({ key, members }) => ({
    subscriptions: members.map((_, k) => ({
      subject: dataSubject(key, 'so-ag', k, k),
      kind: FrameKind.shardGather,
      shard: k,
    })),
    sender: (shard) => members[shard]!,
  }),
};

class ShardOwnerAllReduce {
  private readonly me: number;
  private readonly n: number;
  /** Where unaligned remote contributions to our shard are copied, by member index (ours is `data`). */
  private readonly parts: Float32Array[] = [];
  /** Per member, per chunk of our shard: its contribution (a view of the message or of `parts`). */
  private readonly views: (Float32Array | undefined)[][] = [];
  private readonly payloads: (FramePayload | undefined)[][] = [];
  private readonly partChunks: ChunkSet[] = [];
  /** Per chunk of our shard: how many remote contributions are in. */
  private readonly arrivals: Uint16Array;
  private reducedChunks = 0;
  private readonly gathered: ChunkSet;
  /** Each contributor's sum of squares over our shard, measured as we sum it (contributions.ts). */
  readonly contributions: ContributionNorms;
  /** What the measured sums hand back: the squares of the parts they just added. */
  private readonly squares = new Float64Array(2);

  constructor(
    private readonly round: Round,
    private readonly data: Float32Array,
    readonly result: Float32Array,
  ) {
    const { layout, spec } = round;
    const { key, members } = spec;
    this.n = members.length;
    this.me = spec.selfIndex;
    this.contributions = new ContributionNorms(members);
    const own = layout.shard(this.me);
    this.arrivals = new Uint16Array(layout.chunkCount(this.me));
    for (let m = 0; m < this.n; m++) {
      this.parts.push(m === this.me ? data.subarray(own.lo, own.hi) : takeScratch(own.hi - own.lo));
      this.partChunks.push(new ChunkSet(layout, m === this.me ? [] : [this.me]));
      this.views.push([]);
      this.payloads.push([]);
    }
    round.onSettle(() => returnScratch(this.parts.filter((_, m) => m !== this.me)));
    const others = members.map((_, k) => k).filter((k) => k !== this.me);
    this.gathered = new ChunkSet(layout, others);
    round.subscribe(dataSubject(key, 'so-rs', this.me, '*'), FrameKind.shardReduce, (h, payload) => {
      if (h.shard !== this.me || !this.partChunks[h.from]?.add(h.shard, h.chunk)) return;
      // Checked when summed (reduce): no copy when the message bytes are aligned.
      this.views[h.from]![h.chunk] = payload.floats(this.parts[h.from]!, h.offset - own.lo);
      this.payloads[h.from]![h.chunk] = payload;
      if (++this.arrivals[h.chunk]! === this.n - 1) this.reduce(h.chunk);
    });
    for (const k of others) {
      if (layout.chunkCount(k) === 0) continue;
      round.subscribe(dataSubject(key, 'so-ag', k, k), FrameKind.shardGather, (h, payload) => {
        if (h.shard !== k || !this.gathered.add(h.shard, h.chunk)) return;
        payload.copyTo(this.result, h.offset);
        this.maybeComplete();
      });
    }
    round.missingData = () => this.missing();
  }

  /**
   * After the barrier: send our part of every other shard to its owner. Chunk-major, owners rotated
   * from our own index: all owners get their first chunk early and start the fan-out while the rest
   * flows, and no owner has every member sending to it at once.
   */
  start(): void {
    const { layout, spec } = this.round;
    const chunks = Math.max(0, ...spec.members.map((_, k) => layout.chunkCount(k)));
    for (let j = 0; j < chunks; j++) {
      for (let d = 1; d < this.n; d++) {
        const k = (this.me + d) % this.n;
        if (j >= layout.chunkCount(k)) continue;
        const c = layout.chunk(k, j);
        const subject = dataSubject(spec.key, 'so-rs', k, this.me);
        this.round.sendData(subject, FrameKind.shardReduce, k, j, this.data.subarray(c.lo, c.hi));
      }
    }
    // With one member nothing arrives: every chunk of our shard is already complete.
    if (this.n === 1) for (let j = 0; j < this.arrivals.length; j++) this.reduce(j);
    this.maybeComplete();
  }

  // Sum in member order ((x0 + x1) + x2) + ..., each step rounded to float32: a fixed order, so the
  // bytes do not depend on which contribution arrived first. Then one fan-out publish. The finiteness
  // check rides on the last addition: a sum is finite only if every part was (overflow aside).
  private reduce(j: number): void {
    const { layout, spec } = this.round;
    const c = layout.chunk(this.me, j);
    const out = this.result.subarray(c.lo, c.hi);
    const part = (m: number) => (m === this.me ? this.data.subarray(c.lo, c.hi) : this.views[m]![j]!);
    const squares = this.squares;
    if (this.n === 1) {
      this.contributions.add(0, part(0));
      out.set(part(0));
    } else {
      // Each contributor is measured in the pass that adds it; only the last sum is checked.
      let poison = sumMeasured(out, part(0), part(1), squares);
      this.contributions.addSquares(0, squares[0]!);
      this.contributions.addSquares(1, squares[1]!);
      for (let m = 2; m < this.n; m++) {
        poison = addMeasured(out, part(m), squares);
        this.contributions.addSquares(m, squares[0]!);
      }
      if (poison !== 0) this.refuseNonFinite(j);
    }
    for (let m = 0; m < this.n; m++) {
      this.views[m]![j] = undefined; // let the messages go
      this.payloads[m]![j] = undefined;
    }
    this.reducedChunks++;
    if (this.n > 1 || spec.observers.length > 0) {
      // We keep what the others decode: the same bytes everywhere, whatever the encoding.
      if (spec.encoding === 'bf16') roundToBf16(out);
      const subject = dataSubject(spec.key, 'so-ag', this.me, this.me);
      this.round.sendData(subject, FrameKind.shardGather, this.me, j, out);
    }
    this.maybeComplete();
  }

  /**
   * The sum of chunk `j` is not finite: refuse the first contribution in member order that holds a
   * NaN or ±Inf, naming its sender. None does when our own part does or the sum overflowed; then the
   * bytes go out and every receiver refuses them, naming us (docs/collective.md, "What is not done").
   */
  private refuseNonFinite(j: number): void {
    for (let m = 0; m < this.n; m++) {
      if (m !== this.me) this.payloads[m]![j]!.check(this.views[m]![j]!);
    }
  }

  private maybeComplete(): void {
    if (this.reducedChunks === this.arrivals.length && this.gathered.complete) this.round.complete();
  }

  private missing(): MissingPart[] {
    const { members } = this.round.spec;
    const out: MissingPart[] = [];
    this.partChunks.forEach((set, m) => {
      for (const [shard, chunks] of set.missing()) {
        out.push({ member: members[m]!, phase: 'reduce-scatter', shard, chunks });
      }
    });
    for (const [shard, chunks] of this.gathered.missing()) {
      out.push({ member: members[shard]!, phase: 'gather', shard, chunks });
    }
    return out;
  }
}

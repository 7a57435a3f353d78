// Shard-owner all-reduce: member k owns shard k. Every member sends each owner its part of the
// owner's shard (reduce-scatter, n-1 messages per chunk), the owner sums them in member order and
// publishes the reduced chunk once to a fan-out subject that every member and observer receives.
// Two rounds; about n·G bytes into the server (DESIGN §4). Everyone ends with the owner's bytes.
import type { Algorithm } from './algorithm.ts';
import { ChunkSet } from './chunk-set.ts';
import { ContributionNorms } from './contributions.ts';
import type { MissingPart } from './errors.ts';
import { FrameKind } from './frame.ts';
import type { Round } from './round.ts';
import { returnScratch, takeScratch } from './scratch.ts';
import { dataSubject } from './subjects.ts';

export const shardOwner: Algorithm = {
  summary: 'n·G into the server, 2 hops',
  minMembers: 1,
  member: (round, data) => new ShardOwnerAllReduce(round, data),
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
  readonly result: Float32Array;
  private readonly me: number;
  private readonly n: number;
  /** Remote contributions to our shard, by member index (ours is `data`). */
  private readonly parts: Float32Array[] = [];
  private readonly partChunks: ChunkSet[] = [];
  /** Per chunk of our shard: how many remote contributions are in. */
  private readonly arrivals: Uint16Array;
  private reducedChunks = 0;
  private readonly gathered: ChunkSet;
  /** Each contributor's sum of squares over our shard, measured as we sum it (contributions.ts). */
  readonly contributions: ContributionNorms;

  constructor(
    private readonly round: Round,
    private readonly data: Float32Array,
  ) {
    const { layout, spec } = round;
    const { key, members } = spec;
    this.n = members.length;
    this.me = spec.selfIndex;
    this.result = new Float32Array(data.length);
    this.contributions = new ContributionNorms(members);
    const own = layout.shard(this.me);
    this.arrivals = new Uint16Array(layout.chunkCount(this.me));
    for (let m = 0; m < this.n; m++) {
      this.parts.push(m === this.me ? data.subarray(own.lo, own.hi) : takeScratch(own.hi - own.lo));
      this.partChunks.push(new ChunkSet(layout, m === this.me ? [] : [this.me]));
    }
    round.onSettle(() => returnScratch(this.parts.filter((_, m) => m !== this.me)));
    const others = members.map((_, k) => k).filter((k) => k !== this.me);
    this.gathered = new ChunkSet(layout, others);
    round.subscribe(dataSubject(key, 'so-rs', this.me, '*'), FrameKind.shardReduce, (h, payload) => {
      if (h.shard !== this.me || !this.partChunks[h.from]?.add(h.shard, h.chunk)) return;
      payload.copyTo(this.parts[h.from]!, h.offset - own.lo);
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
  // bytes do not depend on which contribution arrived first. Then one fan-out publish.
  private reduce(j: number): void {
    const { layout, spec } = this.round;
    const c = layout.chunk(this.me, j);
    const lo = c.lo - layout.shard(this.me).lo;
    const len = c.hi - c.lo;
    const out = this.result.subarray(c.lo, c.hi);
    const part = (m: number) => this.parts[m]!.subarray(lo, lo + len);
    for (let m = 0; m < this.n; m++) this.contributions.add(m, part(m));
    if (this.n === 1) out.set(part(0));
    else {
      const [x0, x1] = [part(0), part(1)];
      for (let i = 0; i < len; i++) out[i] = x0[i]! + x1[i]!;
    }
    for (let m = 2; m < this.n; m++) {
      const p = part(m);
      for (let i = 0; i < len; i++) out[i]! += p[i]!;
    }
    this.reducedChunks++;
    if (this.n > 1 || spec.observers.length > 0) {
      const subject = dataSubject(spec.key, 'so-ag', this.me, this.me);
      this.round.sendData(subject, FrameKind.shardGather, this.me, j, out);
    }
    this.maybeComplete();
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

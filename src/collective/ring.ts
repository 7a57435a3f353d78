// Ring all-reduce: member r sends only to r+1. Shard s starts at member s, each member on the way
// adds its own part, member s-1 holds the full sum after n-1 hops and sends those bytes on around the
// ring for n-2 more hops (all-gather). Pipelined per chunk: a chunk moves on as soon as it arrives.
// 2(n-1) rounds; about 2(n-1)·G bytes into the server (DESIGN §4).
import type { Algorithm } from './algorithm.ts';
import { ChunkSet } from './chunk-set.ts';
import type { MissingPart } from './errors.ts';
import { addInto, sumInto } from './float-sum.ts';
import { FrameKind } from './frame.ts';
import { roundToBf16 } from './gradient-encoding.ts';
import type { FramePayload } from './payload.ts';
import type { Round } from './round.ts';
import { dataSubject } from './subjects.ts';

const mod = (a: number, n: number) => ((a % n) + n) % n;

export const ring: Algorithm = {
  summary: '2(n-1)·G into the server, 2(n-1) hops',
  minMembers: 2,
  member: (round, data, result) => new RingAllReduce(round, data, result),
  observer({ key, members }) {
    const n = members.length;
    // The link from the last member to the first carries every final shard except shard 1, which
    // member 0 completes and sends to member 1.
    return {
      subscriptions: [
        { subject: dataSubject(key, 'ring-ag', '*', n - 1), kind: FrameKind.ringGather },
        { subject: dataSubject(key, 'ring-ag', 1, 0), kind: FrameKind.ringGather },
      ],
      sender: (shard) => (shard === 1 ? members[0]! : members[n - 1]!),
    };
  },
};

class RingAllReduce {
  private readonly me: number;
  private readonly n: number;
  private readonly pred: string;
  private readonly predIndex: number;
  private readonly partials: ChunkSet;
  private readonly finals: ChunkSet;
  /** Chunks whose final bytes are in `result`: every chunk of every shard, once. */
  private finalChunks = 0;
  private readonly totalChunks: number;

  constructor(
    private readonly round: Round,
    private readonly data: Float32Array,
    readonly result: Float32Array,
  ) {
    const { layout, spec } = round;
    const { key, members } = spec;
    this.n = members.length;
    if (this.n < 2)
      throw new Error('ring all-reduce needs at least 2 members (minMembers routes 1 elsewhere)');
    this.me = spec.selfIndex;
    this.predIndex = mod(this.me - 1, this.n);
    this.pred = members[this.predIndex]!;
    const shards = members.map((_, s) => s);
    this.totalChunks = shards.reduce((t, s) => t + layout.chunkCount(s), 0);
    // We start shard `me` (nothing arrives for it) and complete shard me+1 (no gather for it).
    this.partials = new ChunkSet(
      layout,
      shards.filter((s) => s !== this.me),
    );
    this.finals = new ChunkSet(
      layout,
      shards.filter((s) => s !== mod(this.me + 1, this.n)),
    );
    round.subscribe(dataSubject(key, 'ring-rs', '*', this.predIndex), FrameKind.ringReduce, (h, payload) => {
      if (this.partials.add(h.shard, h.chunk)) this.onPartial(h.shard, h.chunk, h.offset, payload);
    });
    round.subscribe(dataSubject(key, 'ring-ag', '*', this.predIndex), FrameKind.ringGather, (h, payload) => {
      if (this.finals.add(h.shard, h.chunk)) this.onFinal(h.shard, h.chunk, h.offset, payload);
    });
    round.missingData = () => this.missing();
  }

  /** After the barrier: start our own shard around the ring. */
  start(): void {
    const { layout, spec } = this.round;
    const subject = dataSubject(spec.key, 'ring-rs', this.me, this.me);
    for (let j = 0; j < layout.chunkCount(this.me); j++) {
      const c = layout.chunk(this.me, j);
      this.round.sendData(subject, FrameKind.ringReduce, this.me, j, this.data.subarray(c.lo, c.hi));
    }
    this.maybeComplete();
  }

  // partial + own, rounded to float32: shard s is summed ((x_s + x_s+1) + x_s+2) + ... in ring order,
  // the same order whoever runs it. `result` doubles as scratch until the final bytes come around.
  private onPartial(shard: number, chunk: number, offset: number, payload: FramePayload): void {
    const len = payload.elements;
    const out = this.result.subarray(offset, offset + len);
    const partial = payload.floats(this.result, offset);
    const own = this.data.subarray(offset, offset + len);
    if (partial.buffer === this.result.buffer) {
      // Copied into `out` (unaligned message): check it before adding to it in place.
      payload.check(partial);
      addInto(out, own, false);
    } else if (sumInto(out, partial, own, true) !== 0) {
      // Not finite: refuse the partial if it is the cause (naming our predecessor); else our own
      // part or the addition is, and our successor refuses what we send, naming us.
      payload.check(partial);
    }
    const { spec } = this.round;
    if (shard === mod(this.me + 1, this.n)) {
      this.finalChunks++;
      // We keep what the others decode: the same bytes everywhere, whatever the encoding.
      if (spec.encoding === 'bf16') roundToBf16(out);
      this.round.sendData(
        dataSubject(spec.key, 'ring-ag', shard, this.me),
        FrameKind.ringGather,
        shard,
        chunk,
        out,
      );
      this.maybeComplete();
    } else {
      this.round.sendData(
        dataSubject(spec.key, 'ring-rs', shard, this.me),
        FrameKind.ringReduce,
        shard,
        chunk,
        out,
      );
    }
  }

  // Final bytes travel unchanged, so every member (and observer) ends with the completer's bytes.
  private onFinal(shard: number, chunk: number, offset: number, payload: FramePayload): void {
    const out = payload.copyTo(this.result, offset);
    this.finalChunks++;
    // Stop before the completer (shard - 1), who has had these bytes from the start.
    if (mod(this.me + 1, this.n) !== mod(shard - 1, this.n)) {
      const { spec } = this.round;
      const subject = dataSubject(spec.key, 'ring-ag', shard, this.me);
      this.round.sendData(subject, FrameKind.ringGather, shard, chunk, out);
    }
    this.maybeComplete();
  }

  private maybeComplete(): void {
    if (this.finalChunks === this.totalChunks) this.round.complete();
  }

  // A ring member only hears its predecessor, so that is whom a timeout can name.
  private missing(): MissingPart[] {
    const out: MissingPart[] = [];
    for (const [shard, chunks] of this.partials.missing()) {
      out.push({ member: this.pred, phase: 'reduce-scatter', shard, chunks });
    }
    for (const [shard, chunks] of this.finals.missing()) {
      out.push({ member: this.pred, phase: 'gather', shard, chunks });
    }
    return out;
  }
}

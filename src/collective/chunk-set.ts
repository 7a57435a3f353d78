// Which chunks of which shards have arrived: drops duplicates and lists what is still missing for
// the timeout error.
import type { Layout } from './chunking.ts';

export class ChunkSet {
  private readonly seen = new Map<number, Uint8Array>();
  /** Chunks expected in all. */
  readonly expected: number;
  /** Chunks received so far (without duplicates). */
  received = 0;

  constructor(layout: Layout, shards: readonly number[]) {
    let expected = 0;
    for (const s of shards) {
      const n = layout.chunkCount(s);
      this.seen.set(s, new Uint8Array(n));
      expected += n;
    }
    this.expected = expected;
  }

  /** Records (shard, chunk); false when it was already there or is not expected here. */
  add(shard: number, chunk: number): boolean {
    const bits = this.seen.get(shard);
    if (!bits || chunk >= bits.length || bits[chunk]) return false;
    bits[chunk] = 1;
    this.received++;
    return true;
  }

  get complete(): boolean {
    return this.received === this.expected;
  }

  /** [shard, missing chunk indices] for every shard with something missing. */
  missing(): Array<readonly [number, number[]]> {
    const out: Array<readonly [number, number[]]> = [];
    for (const [shard, bits] of this.seen) {
      const chunks: number[] = [];
      bits.forEach((b, j) => {
        if (!b) chunks.push(j);
      });
      if (chunks.length > 0) out.push([shard, chunks]);
    }
    return out;
  }
}

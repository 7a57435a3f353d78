// Float32 scratch space that outlives a round: the shard-owner's copies of the other members'
// contributions are as large as the gradient, and a fresh multi-MiB array each step costs page faults
// and garbage collection (bench/all-reduce.ts; docs/collective.md, "Per-member cost"). A round takes
// its buffers here and gives them back when it settles; nothing it returns to a caller comes from here.

/** Bytes kept for reuse at most; beyond that a released buffer is left to the garbage collector. */
const MAX_POOLED_BYTES = 256 * 2 ** 20;

const free = new Map<number, Float32Array[]>();
let pooledBytes = 0;

/** A Float32Array of `length` elements with arbitrary contents: the caller writes before it reads. */
export function takeScratch(length: number): Float32Array {
  const reused = free.get(length)?.pop();
  if (!reused) return new Float32Array(length);
  pooledBytes -= reused.byteLength;
  return reused;
}

/** Gives `buffers` back; the caller must not touch them afterwards. */
export function returnScratch(buffers: readonly Float32Array[]): void {
  for (const b of buffers) {
    if (b.byteOffset !== 0 || b.byteLength !== b.buffer.byteLength) continue; // a view: not ours
    if (pooledBytes + b.byteLength > MAX_POOLED_BYTES) return;
    const list = free.get(b.length) ?? [];
    list.push(b);
    free.set(b.length, list);
    pooledBytes += b.byteLength;
  }
}

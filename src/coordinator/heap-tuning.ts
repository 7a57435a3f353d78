// The coordinator's garbage collector, tuned for answer time. Its live heap is small (tens of MB),
// it allocates fast (a few KB per result at 10,000 results/s), and every pause delays the answer
// to every report that arrives meanwhile. Three settings, each traced in the dispatch bench
// (docs/scale.md "Major collections back to back" and "Young collections: pretenuring and
// ArrayBuffers"):
//
// - Heap growth factor 3. For such a heap V8's own factor can come out as low as 1.2, and then the
//   room left after a major collection is less than the young generation's capacity, which starts
//   the next incremental marking at once: major collections back to back, 20-50 ms each. A fixed
//   factor keeps that room larger than the young generation for any live heap over ~8 MB, at the
//   cost of a heap up to three times its live size.
// - No allocation-site pretenuring. When V8 saw the objects of a literal survive (a burst of
//   micro-batches queued while workers joined), it allocated that literal's later objects straight
//   in the old generation; dead there, they kept the young objects they point to alive through
//   every young collection (~800 KB per collection at 256 workers, all promoted and copied), so
//   each young collection took 2.5-4 ms instead of ~1. Whether it happened depended on the run.
// - Buffer pool of 64 KiB. A micro-batch message (~6 KB) is above the default pool's limit (4 KiB),
//   so grpc-js's frame for each one had an ArrayBuffer of its own; sweeping ~2,000 dead ArrayBuffers
//   took ~2 ms of every other young collection. Ten frames now share one pooled ArrayBuffer.
//
// V8 reads both flags when it uses them, so setting them at start-up takes effect.
import { setFlagsFromString } from 'node:v8';

/** Heap growth factor (1 + percent / 100) after each major collection of the coordinator's process. */
export const COORDINATOR_HEAP_GROWING_PERCENT = 200;
/** Buffer.poolSize of the coordinator's process: Buffers under half of it share pooled ArrayBuffers. */
export const COORDINATOR_BUFFER_POOL_BYTES = 64 * 1024;

let tuned = false;

/** Tunes the coordinator process's garbage collection (once; idempotent). */
export function tuneCoordinatorHeap(): void {
  if (tuned) return;
  setFlagsFromString(`--heap-growing-percent=${COORDINATOR_HEAP_GROWING_PERCENT}`);
  setFlagsFromString('--no-allocation-site-pretenuring');
  Buffer.poolSize = COORDINATOR_BUFFER_POOL_BYTES;
  tuned = true;
}

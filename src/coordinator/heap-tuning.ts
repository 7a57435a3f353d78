// The coordinator's garbage collector, tuned for answer time. Its live heap is small (tens of MB)
// and it allocates fast (a few KB per result at 10,000 results/s). For such a heap V8's default
// growth factor can come out as low as 1.2, and then the room left after a major collection is
// less than the young generation's capacity, which starts the next incremental marking at once:
// major collections back to back, each stalling the event loop for 20-50 ms (traced in the dispatch
// bench, docs/scale.md "Major collections back to back"). A fixed factor of 3 keeps that room larger
// than the young generation for any live heap over ~8 MB, at the cost of a heap up to three times
// its live size. The flag is read at each collection, so setting it at start-up takes effect.
import { setFlagsFromString } from 'node:v8';

/** Heap growth factor (1 + percent / 100) after each major collection of the coordinator's process. */
export const COORDINATOR_HEAP_GROWING_PERCENT = 200;

let tuned = false;

/** Sets the coordinator process's heap growth (once; idempotent). */
export function tuneCoordinatorHeap(): void {
  if (tuned) return;
  setFlagsFromString(`--heap-growing-percent=${COORDINATOR_HEAP_GROWING_PERCENT}`);
  tuned = true;
}

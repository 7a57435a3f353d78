// The default micro-batch deadline (docs/faults.md, docs/security.md): derived from how long this
// run's micro-batches actually take from being dealt to being reported, so a peer that takes
// credits and never reports cannot hold the step for longer than a few honest micro-batches would.
// deadline = max(floor, DEADLINE_FACTOR x the 90th percentile of the last SAMPLES times), and
// UNMEASURED_FACTOR x floor until a first micro-batch was measured (the first ones of a large model
// may take long, and nothing says yet how long).

export const DEADLINE_FACTOR = 10;
export const UNMEASURED_FACTOR = 10;
const SAMPLES = 64;

export class MicroBatchTimes {
  // The last SAMPLES times in a ring: recording runs at every result and allocates nothing (an
  // array shifted and pushed reallocated its store every few results, and those stores lived long
  // enough to fill the old generation: docs/scale.md).
  private readonly times = new Float64Array(SAMPLES);
  private count = 0;

  /** One micro-batch from deal to report, in ms. */
  record(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.times[this.count % SAMPLES] = ms;
    this.count++;
  }

  /** 90th percentile of the recorded times (undefined before the first). */
  p90(): number | undefined {
    const n = Math.min(this.count, SAMPLES);
    if (n === 0) return undefined;
    const s = this.times.slice(0, n).sort();
    return s[Math.min(n - 1, Math.floor(0.9 * n))]!;
  }

  /**
   * The deadline in ms: UNMEASURED_FACTOR x `floorMs` (the heartbeat deadline) until a time is
   * measured, then max(floorMs, DEADLINE_FACTOR x p90).
   */
  deadline(floorMs: number): number {
    const p = this.p90();
    return p === undefined ? UNMEASURED_FACTOR * floorMs : Math.max(floorMs, Math.ceil(DEADLINE_FACTOR * p));
  }
}

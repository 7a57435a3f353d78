// Splits a worker's wall time into step phases (compute, wait, allreduce, commit, idle): it is in
// exactly one phase at any time, and entering a phase books the time spent in the previous one.
// The time source is injected, so the accounting is tested without sleeping.

/**
 * Where a worker's wall time goes, every second in exactly one: computing micro-batches, waiting
 * for the others to finish the step (or evaluation), in the all-reduce, waiting for the commit and
 * applying it, or idle (nothing dealt: between steps, while the coordinator evaluates or
 * checkpoints, loading the model, no run).
 */
export type StepPhase = 'compute' | 'wait' | 'allreduce' | 'commit' | 'idle';
export const STEP_PHASES: readonly StepPhase[] = ['compute', 'wait', 'allreduce', 'commit', 'idle'];

export class PhaseClock {
  private current: StepPhase = 'idle';
  private since: number;

  constructor(
    private readonly book: (phase: StepPhase, seconds: number) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.since = now();
  }

  get phase(): StepPhase {
    return this.current;
  }

  /** From now on the worker is in `phase`; the time since the last change goes to the previous one. */
  enter(phase: StepPhase): void {
    this.flush();
    this.current = phase;
  }

  /** Books the time in the current phase so far (before a scrape, at exit). */
  flush(): void {
    const t = this.now();
    if (t > this.since) this.book(this.current, (t - this.since) / 1000);
    this.since = t;
  }
}

// Who pays for data that cannot be counted (docs/security.md): a worker whose result or all-reduce
// data was refused loses its session the first time and its place in the run at the
// OFFENCES_BEFORE_DROP-th; a blame for one round's data, heard from several members, counts once;
// a non-finite reduced sum nobody can be blamed for is retried until MAX_UNATTRIBUTED_NONFINITE in
// a row stop the run. Bookkeeping only, no I/O: the step driver acts on what it answers.

/** Refused results a worker may produce: the first costs its session (it reconnects), this many its place. */
export const OFFENCES_BEFORE_DROP = 2;
/** Consecutive non-finite reduced sums nobody can be blamed for before the run stops with an error. */
export const MAX_UNATTRIBUTED_NONFINITE = 3;

export interface Penalty {
  /** Refused results of this worker over the run, this one included. */
  readonly offences: number;
  /** true: dropped for good (its Hello is refused); false: its session is reset. */
  readonly dropped: boolean;
}

/** What a worker's `offences`-th refused result costs it. */
export function penalty(offences: number): Penalty {
  return { offences, dropped: offences >= OFFENCES_BEFORE_DROP };
}

export interface NonFiniteStreak {
  /** Non-finite reduced sums in a row since the last commit, this one included. */
  readonly count: number;
  /** retry the step under a new generation, or stop the run (nothing was committed). */
  readonly verdict: 'retry' | 'stop';
}

export class Offences {
  private readonly counts = new Map<string, number>();
  private readonly droppedIds = new Set<string>();
  /** `generation:worker` of blames already acted on. */
  private readonly blamed = new Set<string>();
  private streak = 0;

  /** Worker ids dropped for good: their Hello is refused for the rest of the run. */
  get dropped(): ReadonlySet<string> {
    return this.droppedIds;
  }

  /** Refused results of `worker` so far. */
  of(worker: string): number {
    return this.counts.get(worker) ?? 0;
  }

  /** A result or the all-reduce data of `worker` was refused: what it costs. */
  refuse(worker: string): Penalty {
    const p = penalty(this.of(worker) + 1);
    this.counts.set(worker, p.offences);
    if (p.dropped) this.droppedIds.add(worker);
    return p;
  }

  /**
   * A member blamed `worker` for its data of `generation`: true the first time (act on it), false
   * for the same blame heard again from another member.
   */
  blame(worker: string, generation: number): boolean {
    const key = `${generation}:${worker}`;
    if (this.blamed.has(key)) return false;
    this.blamed.add(key);
    return true;
  }

  /** The reduced sum was not finite although every contribution passed the members' checks. */
  nonFiniteSum(): NonFiniteStreak {
    this.streak++;
    return { count: this.streak, verdict: this.streak >= MAX_UNATTRIBUTED_NONFINITE ? 'stop' : 'retry' };
  }

  /** A step committed: the run of non-finite sums is broken. */
  committed(): void {
    this.streak = 0;
  }
}

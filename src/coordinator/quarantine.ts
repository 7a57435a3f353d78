// A worker that held micro-batches past its deadline (a hoarder, or a device that hangs) is revoked
// and then kept out for a while before it may rejoin (docs/security.md): the first time for as long
// as the deadline it missed, each further time twice as long as the last, up to MAX_QUARANTINE_MS.
// Without it a hoarder rejoined at once and stalled the next step for another whole deadline.
// Bookkeeping only: the handshake refuses a quarantined worker's Hello (retryable) with what is left.

/** The longest quarantine, however often a worker hoards (it can always come back in the end). */
export const MAX_QUARANTINE_MS = 60 * 60_000;

export interface Sentence {
  /** Quarantines of this worker over the run, this one included. */
  readonly offences: number;
  /** How long it is kept out, in ms. */
  readonly ms: number;
}

export class Quarantine {
  private readonly byWorker = new Map<string, { offences: number; until: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** `worker` missed a deadline of `deadlineMs`: keeps it out for deadlineMs x 2^(offences - 1). */
  impose(worker: string, deadlineMs: number): Sentence {
    const offences = (this.byWorker.get(worker)?.offences ?? 0) + 1;
    const ms = Math.min(MAX_QUARANTINE_MS, Math.max(1, deadlineMs) * 2 ** (offences - 1));
    this.byWorker.set(worker, { offences, until: this.now() + ms });
    return { offences, ms };
  }

  /** Milliseconds before `worker` may rejoin, or undefined when it may now. */
  remaining(worker: string): number | undefined {
    const q = this.byWorker.get(worker);
    if (!q) return undefined;
    const left = q.until - this.now();
    return left > 0 ? left : undefined;
  }
}

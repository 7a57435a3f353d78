// What becomes of a step's (or an evaluation's) micro-batches once dealt: a result is checked
// (result-check.ts) and counted once, by the ledger, from the worker that holds it; a straggler's
// unstarted ones come back when it is asked (revoked), a lost or repaired worker's are taken back
// (requeued); each worker's deal-to-report times give it its own default deadline. The step driver
// says which ledger is current; this file keeps the run's counts and says what happened.
import type { MicroBatch } from '../data/micro-batch.ts';
import type { Events } from '../events/events.ts';
import { MicroBatchTimes } from './microbatch-deadline.ts';
import { checkResult } from './result-check.ts';
import type { StepLedger, WorkerId } from './step-ledger.ts';

/** A worker's report of one micro-batch, as far as counting it goes. */
export interface ReportedResult {
  readonly id: number;
  readonly lossSum: number;
  readonly supervisedTokens: number;
  readonly gradNorm: number;
}

export class StepWork {
  /** Each worker's measured micro-batch times (deal to report). */
  private readonly times = new Map<WorkerId, MicroBatchTimes>();
  private requeuedSoFar = 0;

  constructor(
    private readonly events: Events,
    private readonly now: () => number = Date.now,
  ) {}

  /** Micro-batches requeued or revoked over the run (this process). */
  get requeued(): number {
    return this.requeuedSoFar;
  }

  /**
   * Counts `r` from worker `id` in `ledger` (its micro-batches looked up in `source`; `train`: a
   * training step, whose gradient must be finite too). Returns why it cannot be counted, if so; a
   * duplicate or a result from a worker that no longer holds it is not counted, and not refused.
   */
  count(
    ledger: StepLedger,
    source: ReadonlyMap<number, MicroBatch>,
    id: WorkerId,
    r: ReportedResult,
    train: boolean,
  ): string | undefined {
    const mb = source.get(r.id);
    const checked = mb && checkResult(mb, r, train);
    if (checked && !checked.ok) return checked.why;
    const dealt = ledger.assignedAt(r.id, id);
    // The ledger decides (and records) whether it counts: only from the worker that holds it.
    if (!ledger.complete(id, r.id, r.lossSum, checked ? checked.tokens : r.supervisedTokens, r.gradNorm))
      return undefined;
    this.events.debug('microbatch_completed', `micro-batch ${r.id} of ${id} counted`, {
      worker: id,
      step: ledger.step,
      micro_batch: r.id,
    });
    if (dealt !== undefined) {
      const t = this.times.get(id) ?? new MicroBatchTimes();
      t.record(this.now() - dealt);
      this.times.set(id, t);
    }
    return undefined;
  }

  /** Worker `id` gave back `ids` it had not started: the ones it still held are dealt again. */
  revoke(ledger: StepLedger, id: WorkerId, ids: readonly number[]): number {
    const back = ledger.revoke(id, ids);
    if (back.length === 0) return 0;
    this.requeuedSoFar += back.length;
    this.events.info(
      'microbatches_revoked',
      `revoked micro-batches ${back.join(', ')} from ${id} before it started them`,
      { worker: id, step: ledger.step, micro_batches: back },
    );
    return back.length;
  }

  /** Takes back what worker `id` computed or holds in `ledger` (lost, or its replica diverged). */
  requeue(ledger: StepLedger, id: WorkerId): void {
    const { done, assigned } = ledger.heldBy(id);
    const back = ledger.releaseWorker(id);
    if (back.length === 0) return;
    this.requeuedSoFar += back.length;
    this.events.info(
      'microbatches_requeued',
      `requeued micro-batches ${back.join(', ')} of ${id} (step index ${ledger.step}; computed [${done.join(', ')}], held [${assigned.join(', ')}])`,
      { worker: id, step: ledger.step, micro_batches: back, computed: done, held: assigned },
    );
  }

  /**
   * How long worker `id` may hold a micro-batch (from being dealt) before it is lost: `fixedMs` when
   * set, else derived from its own measured micro-batch times (a slow but honest GPU gets more
   * time, a worker that took work fast and then hoards gets little), at least `floorMs`.
   */
  deadline(id: WorkerId, floorMs: number, fixedMs?: number): number {
    if (fixedMs !== undefined && fixedMs > 0) return fixedMs;
    return (this.times.get(id) ?? new MicroBatchTimes()).deadline(floorMs);
  }
}

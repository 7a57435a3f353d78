// Who computes what (DESIGN §2): deals a step's (or an evaluation's) pending micro-batches to the
// replicas by credit, one per worker per round, so a fast worker takes more; at a step's tail asks a
// straggler to give back the ones it has not started; and says when too few replicas are ready.
// What it dealt is a `microbatches_dealt` event (debug: one per round of dealing).
import type { MicroBatch } from '../data/micro-batch.ts';
import type { Events } from '../events/events.ts';
import { MicroBatchKind, microBatchMessage, revokeMessage } from '../protocol/messages.ts';
import type { Members } from './members.ts';
import type { StepLedger } from './step-ledger.ts';

export class Dealer {
  private waitingSaid = false;

  constructor(
    private readonly members: Members,
    private readonly minWorkers: number,
    private readonly events: Events,
  ) {}

  /**
   * At least --min_workers replicas are ready; says once when the run pauses and when it goes on.
   * With `step`: replicas waiting for the next step are used in this one when, without them, fewer
   * than --min_workers could take its micro-batches (the step could not finish otherwise).
   */
  enoughWorkers(step?: number): boolean {
    const n = this.syncedUsingWaitingIfShort(step);
    if (n >= this.minWorkers) {
      if (this.waitingSaid) this.events.info('run_unpaused', `${n} workers ready: resuming`, { workers: n });
      this.waitingSaid = false;
      return true;
    }
    if (!this.waitingSaid) {
      this.events.warn(
        'run_paused',
        `paused: ${n} of the ${this.minWorkers} workers --min_workers asks for are ready`,
        { workers: n, min_workers: this.minWorkers },
      );
      this.waitingSaid = true;
    }
    return false;
  }

  /**
   * The synced replicas; with `step`, first lets those waiting for the next step take this one's
   * when too few could otherwise. Runs at every deal (every result): one pass over the members, no
   * allocation; rarely changes anything.
   */
  private syncedUsingWaitingIfShort(step?: number): number {
    let synced = 0;
    let dealable = 0;
    for (const m of this.members.values()) {
      if (m.phase !== 'synced') continue;
      synced++;
      if (step === undefined || m.dealFrom <= step) dealable++;
    }
    if (step === undefined || synced === dealable || dealable >= this.minWorkers) return synced;
    for (const m of this.members.values()) if (m.phase === 'synced') m.dealFrom = Math.min(m.dealFrom, step);
    return synced;
  }

  /** Deals pending micro-batches of `ledger` (looked up in `source`) to workers with credit. */
  deal(ledger: StepLedger, source: ReadonlyMap<number, MicroBatch>, kind: MicroBatchKind): void {
    if (!this.enoughWorkers(ledger.step)) return;
    // One micro-batch per worker per round, so credits, not stream order, decide who takes more.
    // Workers holding fewest first (idle ones before busy ones): what a straggler gave back goes to
    // an idle worker, not to another busy one that would be asked to give it back again.
    // Only workers with credit can take one (after a result, usually just the reporter): sorting
    // those, not every replica, keeps a deal O(workers) at 256 of them (docs/scale.md).
    const dealt: number[] = [];
    while (ledger.pending > 0) {
      const takers = this.members.syncedWithCredit(ledger.step);
      if (takers.length === 0) break;
      // Stable: equal loads stay in id order. (heldCount is O(1); the counts change only in the
      // loop below, after the sort. One taker, the usual case after a result, needs no sort.)
      if (takers.length > 1) takers.sort((a, b) => ledger.heldCount(a.link.id) - ledger.heldCount(b.link.id));
      for (const m of takers) {
        const id = ledger.assignNext(m.link.id);
        if (id === undefined) break;
        dealt.push(id);
        this.members.take(m);
        m.link.send(microBatchMessage(source.get(id)!, ledger.step, kind));
      }
    }
    if (dealt.length > 0) {
      const what = kind === MicroBatchKind.MICRO_BATCH_KIND_EVAL ? 'eval' : 'train';
      // The ids are in the fields, not joined into the text: this runs at every result.
      this.events.debug('microbatches_dealt', `dealt ${dealt.length} ${what} micro-batch(es)`, {
        step: ledger.step,
        kind: what,
        micro_batches: dealt,
      });
    }
    if (ledger.pending === 0) this.revokeForIdle(ledger);
  }

  /**
   * The step's tail: nothing is pending, yet a worker is idle while another holds micro-batches
   * queued behind the one it computes (a straggler). Ask the holder to give back those it has not
   * started; it keeps (and reports) any it has, so nothing is computed twice.
   */
  private revokeForIdle(ledger: StepLedger): void {
    const synced = this.members.inPhase('synced');
    const idle = (m: (typeof synced)[number]) =>
      m.credits > 0 && m.dealFrom <= ledger.step && ledger.heldCount(m.link.id) === 0;
    if (!synced.some(idle)) return;
    for (const m of synced) {
      if (m.revoking || ledger.heldCount(m.link.id) < 2) continue;
      m.revoking = true;
      m.link.send(revokeMessage(ledger.step, ledger.heldNow(m.link.id)));
    }
  }
}

// The coordinator's book of one optimizer step (DESIGN.md §2-3): every micro-batch of the step is
// pending, assigned to a worker, or done by a worker. A lost worker's assigned AND done micro-batches
// go back to pending (its gradient accumulator died with it), so the step completes with the
// survivors and no micro-batch is lost or counted twice. Every transition is recorded for audit.

export type WorkerId = string & { readonly __brand: 'WorkerId' };
export const workerId = (s: string) => s as WorkerId;

export type MicroBatchState =
  | { readonly kind: 'pending' }
  | { readonly kind: 'assigned'; readonly worker: WorkerId; readonly at: number }
  | {
      readonly kind: 'done';
      readonly worker: WorkerId;
      readonly lossSum: number;
      readonly tokens: number;
      readonly gradNorm: number;
    };

export type LedgerEvent =
  | { readonly kind: 'assigned' | 'requeued'; readonly id: number; readonly worker: WorkerId }
  | { readonly kind: 'completed'; readonly id: number; readonly worker: WorkerId; readonly tokens: number }
  | { readonly kind: 'ignored'; readonly id: number; readonly worker: WorkerId; readonly why: string };

export interface LedgerSummary {
  readonly step: number;
  readonly planned: number;
  /** Assignments made, re-assignments of requeued micro-batches included. */
  readonly assigned: number;
  /** Micro-batches whose one counted result is in the step (equals `planned` once audited). */
  readonly counted: number;
  readonly requeued: readonly { readonly id: number; readonly worker: WorkerId }[];
  readonly ignored: readonly { readonly id: number; readonly worker: WorkerId; readonly why: string }[];
}

export class StepLedger {
  private readonly states = new Map<number, MicroBatchState>();
  /**
   * Pending micro-batches, the next to deal LAST: taking one is a pop, not a shift of the step's
   * whole queue (10,240 at 256 workers in the dispatch bench), and requeued ones go on the end.
   */
  private readonly queue: number[];
  /** Kept with every state change so the per-result checks cost O(1), not O(micro-batches). */
  private doneCount = 0;
  private readonly assignedTo = new Map<WorkerId, Set<number>>();
  readonly events: LedgerEvent[] = [];

  private dealt = false;

  constructor(
    readonly step: number,
    ids: readonly number[],
    private readonly now: () => number = Date.now,
  ) {
    for (const id of ids) {
      if (this.states.has(id)) throw new Error(`step ${step}: micro-batch ${id} planned twice`);
      this.states.set(id, { kind: 'pending' });
    }
    this.queue = [...ids].reverse();
  }

  /** Puts `ids` first in the queue, in the order given. */
  private putFirst(ids: readonly number[]): void {
    for (let i = ids.length - 1; i >= 0; i--) this.queue.push(ids[i]!);
  }

  /** Hands the next pending micro-batch to `worker`, or undefined when none is pending. */
  assignNext(worker: WorkerId): number | undefined {
    const id = this.queue.pop();
    if (id === undefined) return undefined;
    this.dealt = true;
    this.setState(id, { kind: 'assigned', worker, at: this.now() });
    this.events.push({ kind: 'assigned', id, worker });
    return id;
  }

  /**
   * Records a result. Accepted only from the worker the micro-batch is assigned to; a late report
   * from a worker declared lost, or a duplicate, is ignored (and recorded). Returns whether it counted.
   */
  complete(worker: WorkerId, id: number, lossSum: number, tokens: number, gradNorm = 0): boolean {
    const s = this.states.get(id);
    const ignore = (why: string) => {
      this.events.push({ kind: 'ignored', id, worker, why });
      return false;
    };
    if (!s) return ignore(`not part of step ${this.step}`);
    if (s.kind !== 'assigned') return ignore(`micro-batch is ${s.kind}`);
    if (s.worker !== worker) return ignore(`assigned to ${s.worker}`);
    this.setState(id, { kind: 'done', worker, lossSum, tokens, gradNorm });
    this.events.push({ kind: 'completed', id, worker, tokens });
    return true;
  }

  /** When micro-batch `id` was dealt to `worker`, if it holds it now. */
  assignedAt(id: number, worker: WorkerId): number | undefined {
    const s = this.states.get(id);
    return s?.kind === 'assigned' && s.worker === worker ? s.at : undefined;
  }

  /** What `worker` has in this step: micro-batches it reported (done) and ones it still holds. */
  heldBy(worker: WorkerId): { done: number[]; assigned: number[] } {
    const out = { done: [] as number[], assigned: [] as number[] };
    for (const [id, s] of this.states) {
      if (s.kind !== 'pending' && s.worker === worker) (s.kind === 'done' ? out.done : out.assigned).push(id);
    }
    return out;
  }

  /** Puts back every micro-batch `worker` holds or has done this step. Returns their ids. */
  releaseWorker(worker: WorkerId): number[] {
    const back: number[] = [];
    for (const [id, s] of this.states) {
      if (s.kind !== 'pending' && s.worker === worker) {
        this.setState(id, { kind: 'pending' });
        this.events.push({ kind: 'requeued', id, worker });
        back.push(id);
      }
    }
    // Requeued work goes first, in id order, so the step finishes soonest and deterministically.
    back.sort((a, b) => a - b);
    this.putFirst(back);
    return back;
  }

  /**
   * Puts back micro-batches `worker` gave up before computing them (a revoke), first in the queue.
   * Ids it does not hold (any more) are skipped. Returns those put back.
   */
  revoke(worker: WorkerId, ids: readonly number[]): number[] {
    const back = ids.filter((id) => {
      const s = this.states.get(id);
      return s?.kind === 'assigned' && s.worker === worker;
    });
    for (const id of back) {
      this.setState(id, { kind: 'pending' });
      this.events.push({ kind: 'requeued', id, worker });
    }
    this.putFirst([...back].sort((a, b) => a - b));
    return back;
  }

  /** Micro-batches assigned longer than `ms` (or that worker's `ms(worker)`) ago, by worker (stall detection). */
  overdue(ms: number | ((worker: WorkerId) => number)): Map<WorkerId, number[]> {
    const out = new Map<WorkerId, number[]>();
    const now = this.now();
    for (const [id, s] of this.states) {
      if (s.kind !== 'assigned') continue;
      const limit = typeof ms === 'number' ? ms : ms(s.worker);
      if (s.at < now - limit) out.set(s.worker, [...(out.get(s.worker) ?? []), id]);
    }
    return out;
  }

  /** A micro-batch of this ledger was dealt: the step (or evaluation) has begun. */
  get begun(): boolean {
    return this.dealt;
  }

  get pending(): number {
    return this.queue.length;
  }

  get isComplete(): boolean {
    return this.doneCount === this.states.size;
  }

  /** Micro-batches `worker` holds (assigned, not yet reported), in id order, without scanning the step. */
  heldNow(worker: WorkerId): number[] {
    return [...(this.assignedTo.get(worker) ?? [])].sort((a, b) => a - b);
  }

  /** How many micro-batches `worker` holds now: O(1), for dealing at every result. */
  heldCount(worker: WorkerId): number {
    return this.assignedTo.get(worker)?.size ?? 0;
  }

  private setState(id: number, next: MicroBatchState): void {
    const prev = this.states.get(id)!;
    if (prev.kind === 'done') this.doneCount--;
    if (prev.kind === 'assigned') this.assignedTo.get(prev.worker)?.delete(id);
    this.states.set(id, next);
    if (next.kind === 'done') this.doneCount++;
    if (next.kind === 'assigned') {
      const set = this.assignedTo.get(next.worker) ?? new Set<number>();
      set.add(id);
      this.assignedTo.set(next.worker, set);
    }
  }

  /** Workers whose accumulators hold part of this step (the all-reduce members). */
  contributors(): WorkerId[] {
    const set = new Set<WorkerId>();
    for (const s of this.states.values()) if (s.kind === 'done') set.add(s.worker);
    return [...set].sort();
  }

  /** Totals over done micro-batches: loss sum and supervised tokens (T of DESIGN §2). */
  totals(): { lossSum: number; tokens: number; byWorker: Map<WorkerId, number> } {
    let lossSum = 0;
    let tokens = 0;
    const byWorker = new Map<WorkerId, number>();
    for (const s of this.states.values()) {
      if (s.kind !== 'done') continue;
      lossSum += s.lossSum;
      tokens += s.tokens;
      byWorker.set(s.worker, (byWorker.get(s.worker) ?? 0) + 1);
    }
    return { lossSum, tokens, byWorker };
  }

  /**
   * Per worker, what it said of its counted micro-batches: the sum of their gradient norms (its
   * accumulator's norm can be no larger) and their supervised tokens (contribution-check.ts).
   */
  selfReports(): Map<WorkerId, { normSum: number; tokens: number }> {
    const out = new Map<WorkerId, { normSum: number; tokens: number }>();
    for (const s of this.states.values()) {
      if (s.kind !== 'done') continue;
      const r = out.get(s.worker) ?? { normSum: 0, tokens: 0 };
      out.set(s.worker, { normSum: r.normSum + s.gradNorm, tokens: r.tokens + s.tokens });
    }
    return out;
  }

  /** Per worker, gradient norm / supervised tokens of each counted micro-batch (outlier report). */
  gradientSizes(): Map<WorkerId, number[]> {
    const out = new Map<WorkerId, number[]>();
    for (const s of this.states.values()) {
      if (s.kind !== 'done' || s.tokens === 0) continue;
      out.set(s.worker, [...(out.get(s.worker) ?? []), s.gradNorm / s.tokens]);
    }
    return out;
  }

  /** What happened to this step's micro-batches, for logs and metrics.jsonl (after `audit`). */
  summary(): LedgerSummary {
    let assigned = 0;
    const requeued: { id: number; worker: WorkerId }[] = [];
    const ignored: { id: number; worker: WorkerId; why: string }[] = [];
    for (const e of this.events) {
      if (e.kind === 'assigned') assigned++;
      else if (e.kind === 'requeued') requeued.push({ id: e.id, worker: e.worker });
      else if (e.kind === 'ignored') ignored.push({ id: e.id, worker: e.worker, why: e.why });
    }
    let done = 0;
    for (const st of this.states.values()) if (st.kind === 'done') done++;
    return { step: this.step, planned: this.states.size, assigned, counted: done, requeued, ignored };
  }

  /**
   * Proof from the event log alone that the step is whole: every planned micro-batch ends with
   * exactly one counted completion that was not later requeued. Throws naming the offending ids.
   */
  audit(): void {
    const live = new Map<number, WorkerId>();
    for (const e of this.events) {
      if (e.kind === 'completed') {
        if (live.has(e.id)) throw new Error(`step ${this.step}: micro-batch ${e.id} counted twice`);
        live.set(e.id, e.worker);
      } else if (e.kind === 'requeued') {
        live.delete(e.id);
      }
    }
    const missing = [...this.states.keys()].filter((id) => !live.has(id));
    if (missing.length > 0)
      throw new Error(`step ${this.step}: micro-batches ${missing.join(', ')} never completed`);
  }
}

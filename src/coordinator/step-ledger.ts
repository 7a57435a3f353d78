// The coordinator's book of one optimizer step (DESIGN.md §2-3): every micro-batch of the step is
// pending, assigned to a worker, or done by a worker. A lost worker's assigned AND done micro-batches
// go back to pending (its gradient accumulator died with it), so the step completes with the
// survivors and no micro-batch is lost or counted twice. Every transition is recorded for audit.
//
// The book is kept in typed arrays sized for the step when it is planned, and the event log in
// typed arrays that grow by doubling: recording a deal or a result allocates nothing. At 10,000
// results/s an object per state and per event (three per micro-batch, all living to the step's end)
// made every young-generation collection copy them and the old generation grow through the step,
// and the major collections that followed stalled the coordinator for 20-50 ms (docs/scale.md).

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

const PENDING = 0;
const ASSIGNED = 1;
const DONE = 2;
const KIND_NAMES = ['pending', 'assigned', 'done'] as const;
const EVENT_KINDS = ['assigned', 'requeued', 'completed', 'ignored'] as const;
const [EV_ASSIGNED, EV_REQUEUED, EV_COMPLETED, EV_IGNORED] = [0, 1, 2, 3];

export class StepLedger {
  /** Micro-batch id -> its slot in the arrays below (the planned order). */
  private readonly slotOf = new Map<number, number>();
  private readonly ids: Float64Array;
  private readonly kind: Uint8Array;
  /** Index into `workers` of the worker that holds or did the micro-batch. */
  private readonly holder: Int32Array;
  private readonly at: Float64Array;
  private readonly lossSums: Float64Array;
  private readonly tokenCounts: Float64Array;
  private readonly gradNorms: Float64Array;
  /** Worker ids seen by this ledger, and how many micro-batches each holds now. */
  private readonly workers: WorkerId[] = [];
  private readonly workerIndex = new Map<WorkerId, number>();
  private held = new Int32Array(8);
  /**
   * Pending micro-batches, the next to deal LAST: taking one is a pop, not a shift of the step's
   * whole queue (10,240 at 256 workers in the dispatch bench), and requeued ones go on the end.
   */
  private readonly queue: number[];
  /** Kept with every state change so the per-result checks cost O(1), not O(micro-batches). */
  private doneCount = 0;
  // The event log: kind, micro-batch id, worker index, tokens (completed), and the reason of each
  // ignored report by its event index (rare).
  private eventCount = 0;
  private evKind = new Uint8Array(64);
  private evId = new Float64Array(64);
  private evWorker = new Int32Array(64);
  private evTokens = new Float64Array(64);
  private readonly ignoredWhy = new Map<number, string>();

  private dealt = false;

  constructor(
    readonly step: number,
    ids: readonly number[],
    private readonly now: () => number = Date.now,
  ) {
    const n = ids.length;
    this.ids = new Float64Array(n);
    this.kind = new Uint8Array(n);
    this.holder = new Int32Array(n).fill(-1);
    this.at = new Float64Array(n);
    this.lossSums = new Float64Array(n);
    this.tokenCounts = new Float64Array(n);
    this.gradNorms = new Float64Array(n);
    for (const [slot, id] of ids.entries()) {
      if (this.slotOf.has(id)) throw new Error(`step ${step}: micro-batch ${id} planned twice`);
      this.slotOf.set(id, slot);
      this.ids[slot] = id;
    }
    this.queue = [...ids].reverse();
  }

  /** Every transition, oldest first (built on demand from the log). */
  get events(): LedgerEvent[] {
    const out: LedgerEvent[] = [];
    for (let e = 0; e < this.eventCount; e++) {
      const id = this.evId[e]!;
      const worker = this.workers[this.evWorker[e]!]!;
      const kind = EVENT_KINDS[this.evKind[e]!]!;
      if (kind === 'completed') out.push({ kind, id, worker, tokens: this.evTokens[e]! });
      else if (kind === 'ignored') out.push({ kind, id, worker, why: this.ignoredWhy.get(e)! });
      else out.push({ kind, id, worker });
    }
    return out;
  }

  private indexOf(worker: WorkerId): number {
    let w = this.workerIndex.get(worker);
    if (w === undefined) {
      w = this.workers.length;
      this.workers.push(worker);
      this.workerIndex.set(worker, w);
      if (w >= this.held.length) {
        const grown = new Int32Array(2 * this.held.length);
        grown.set(this.held);
        this.held = grown;
      }
    }
    return w;
  }

  private log(kind: number, id: number, worker: number, tokens = 0): number {
    const e = this.eventCount++;
    if (e === this.evKind.length) {
      const grow = <T extends Uint8Array | Float64Array | Int32Array>(a: T, make: (n: number) => T): T => {
        const b = make(2 * a.length);
        b.set(a);
        return b;
      };
      this.evKind = grow(this.evKind, (n) => new Uint8Array(n));
      this.evId = grow(this.evId, (n) => new Float64Array(n));
      this.evWorker = grow(this.evWorker, (n) => new Int32Array(n));
      this.evTokens = grow(this.evTokens, (n) => new Float64Array(n));
    }
    this.evKind[e] = kind;
    this.evId[e] = id;
    this.evWorker[e] = worker;
    this.evTokens[e] = tokens;
    return e;
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
    const w = this.indexOf(worker);
    const slot = this.slotOf.get(id)!;
    this.setKind(slot, ASSIGNED, w);
    this.at[slot] = this.now();
    this.log(EV_ASSIGNED, id, w);
    return id;
  }

  /**
   * Records a result. Accepted only from the worker the micro-batch is assigned to; a late report
   * from a worker declared lost, or a duplicate, is ignored (and recorded). Returns whether it counted.
   */
  complete(worker: WorkerId, id: number, lossSum: number, tokens: number, gradNorm = 0): boolean {
    const slot = this.slotOf.get(id);
    const w = this.indexOf(worker);
    if (slot === undefined) return this.ignore(id, w, `not part of step ${this.step}`);
    const kind = this.kind[slot]!;
    if (kind !== ASSIGNED) return this.ignore(id, w, `micro-batch is ${KIND_NAMES[kind]}`);
    if (this.holder[slot] !== w) return this.ignore(id, w, `assigned to ${this.workers[this.holder[slot]!]}`);
    this.setKind(slot, DONE, w);
    this.lossSums[slot] = lossSum;
    this.tokenCounts[slot] = tokens;
    this.gradNorms[slot] = gradNorm;
    this.log(EV_COMPLETED, id, w, tokens);
    return true;
  }

  private ignore(id: number, w: number, why: string): false {
    this.ignoredWhy.set(this.log(EV_IGNORED, id, w), why);
    return false;
  }

  /** When micro-batch `id` was dealt to `worker`, if it holds it now. */
  assignedAt(id: number, worker: WorkerId): number | undefined {
    const slot = this.slotOf.get(id);
    if (slot === undefined || this.kind[slot] !== ASSIGNED) return undefined;
    return this.workers[this.holder[slot]!] === worker ? this.at[slot] : undefined;
  }

  /** The slots whose micro-batch `worker` holds or has done, in planned order. */
  private slotsOf(worker: WorkerId, kinds: readonly number[]): number[] {
    const w = this.workerIndex.get(worker);
    const out: number[] = [];
    if (w === undefined) return out;
    for (let slot = 0; slot < this.kind.length; slot++) {
      if (this.holder[slot] === w && kinds.includes(this.kind[slot]!)) out.push(slot);
    }
    return out;
  }

  /** What `worker` has in this step: micro-batches it reported (done) and ones it still holds. */
  heldBy(worker: WorkerId): { done: number[]; assigned: number[] } {
    const out = { done: [] as number[], assigned: [] as number[] };
    for (const slot of this.slotsOf(worker, [ASSIGNED, DONE])) {
      (this.kind[slot] === DONE ? out.done : out.assigned).push(this.ids[slot]!);
    }
    return out;
  }

  /** Puts back every micro-batch `worker` holds or has done this step. Returns their ids. */
  releaseWorker(worker: WorkerId): number[] {
    const back: number[] = [];
    for (const slot of this.slotsOf(worker, [ASSIGNED, DONE])) {
      const w = this.holder[slot]!;
      this.setKind(slot, PENDING, -1);
      this.log(EV_REQUEUED, this.ids[slot]!, w);
      back.push(this.ids[slot]!);
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
    const w = this.workerIndex.get(worker);
    const back = ids.filter((id) => {
      const slot = this.slotOf.get(id);
      return slot !== undefined && this.kind[slot] === ASSIGNED && this.holder[slot] === w;
    });
    for (const id of back) {
      this.setKind(this.slotOf.get(id)!, PENDING, -1);
      this.log(EV_REQUEUED, id, w!);
    }
    this.putFirst([...back].sort((a, b) => a - b));
    return back;
  }

  /** Micro-batches assigned longer than `ms` (or that worker's `ms(worker)`) ago, by worker (stall detection). */
  overdue(ms: number | ((worker: WorkerId) => number)): Map<WorkerId, number[]> {
    const out = new Map<WorkerId, number[]>();
    const now = this.now();
    for (let slot = 0; slot < this.kind.length; slot++) {
      if (this.kind[slot] !== ASSIGNED) continue;
      const worker = this.workers[this.holder[slot]!]!;
      const limit = typeof ms === 'number' ? ms : ms(worker);
      if (this.at[slot]! < now - limit) out.set(worker, [...(out.get(worker) ?? []), this.ids[slot]!]);
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
    return this.doneCount === this.kind.length;
  }

  /** Micro-batches `worker` holds (assigned, not yet reported), in id order. */
  heldNow(worker: WorkerId): number[] {
    return this.slotsOf(worker, [ASSIGNED])
      .map((slot) => this.ids[slot]!)
      .sort((a, b) => a - b);
  }

  /** How many micro-batches `worker` holds now: O(1), for dealing at every result. */
  heldCount(worker: WorkerId): number {
    const w = this.workerIndex.get(worker);
    return w === undefined ? 0 : this.held[w]!;
  }

  private setKind(slot: number, next: number, w: number): void {
    const prev = this.kind[slot]!;
    if (prev === DONE) this.doneCount--;
    if (prev === ASSIGNED) this.held[this.holder[slot]!]!--;
    this.kind[slot] = next;
    this.holder[slot] = w;
    if (next === DONE) this.doneCount++;
    if (next === ASSIGNED) this.held[w]!++;
  }

  /** Workers whose accumulators hold part of this step (the all-reduce members). */
  contributors(): WorkerId[] {
    const set = new Set<WorkerId>();
    for (let slot = 0; slot < this.kind.length; slot++)
      if (this.kind[slot] === DONE) set.add(this.workers[this.holder[slot]!]!);
    return [...set].sort();
  }

  /** Totals over done micro-batches: loss sum and supervised tokens (T of DESIGN §2). */
  totals(): { lossSum: number; tokens: number; byWorker: Map<WorkerId, number> } {
    let lossSum = 0;
    let tokens = 0;
    const byWorker = new Map<WorkerId, number>();
    for (let slot = 0; slot < this.kind.length; slot++) {
      if (this.kind[slot] !== DONE) continue;
      const worker = this.workers[this.holder[slot]!]!;
      lossSum += this.lossSums[slot]!;
      tokens += this.tokenCounts[slot]!;
      byWorker.set(worker, (byWorker.get(worker) ?? 0) + 1);
    }
    return { lossSum, tokens, byWorker };
  }

  /**
   * Per worker, what it said of its counted micro-batches: the sum of their gradient norms (its
   * accumulator's norm can be no larger) and their supervised tokens (contribution-check.ts).
   */
  selfReports(): Map<WorkerId, { normSum: number; tokens: number }> {
    const out = new Map<WorkerId, { normSum: number; tokens: number }>();
    for (let slot = 0; slot < this.kind.length; slot++) {
      if (this.kind[slot] !== DONE) continue;
      const worker = this.workers[this.holder[slot]!]!;
      const r = out.get(worker) ?? { normSum: 0, tokens: 0 };
      out.set(worker, {
        normSum: r.normSum + this.gradNorms[slot]!,
        tokens: r.tokens + this.tokenCounts[slot]!,
      });
    }
    return out;
  }

  /** Per worker, gradient norm / supervised tokens of each counted micro-batch (outlier report). */
  gradientSizes(): Map<WorkerId, number[]> {
    const out = new Map<WorkerId, number[]>();
    for (let slot = 0; slot < this.kind.length; slot++) {
      const tokens = this.tokenCounts[slot]!;
      if (this.kind[slot] !== DONE || tokens === 0) continue;
      const worker = this.workers[this.holder[slot]!]!;
      const list = out.get(worker) ?? [];
      list.push(this.gradNorms[slot]! / tokens);
      out.set(worker, list);
    }
    return out;
  }

  /** What happened to this step's micro-batches, for logs and metrics.jsonl (after `audit`). */
  summary(): LedgerSummary {
    let assigned = 0;
    const requeued: { id: number; worker: WorkerId }[] = [];
    const ignored: { id: number; worker: WorkerId; why: string }[] = [];
    for (let e = 0; e < this.eventCount; e++) {
      const kind = this.evKind[e]!;
      const id = this.evId[e]!;
      const worker = this.workers[this.evWorker[e]!]!;
      if (kind === EV_ASSIGNED) assigned++;
      else if (kind === EV_REQUEUED) requeued.push({ id, worker });
      else if (kind === EV_IGNORED) ignored.push({ id, worker, why: this.ignoredWhy.get(e)! });
    }
    return {
      step: this.step,
      planned: this.kind.length,
      assigned,
      counted: this.doneCount,
      requeued,
      ignored,
    };
  }

  /**
   * Proof from the event log alone that the step is whole: every planned micro-batch ends with
   * exactly one counted completion that was not later requeued. Throws naming the offending ids.
   */
  audit(): void {
    const live = new Map<number, number>();
    for (let e = 0; e < this.eventCount; e++) {
      const kind = this.evKind[e]!;
      const id = this.evId[e]!;
      if (kind === EV_COMPLETED) {
        if (live.has(id)) throw new Error(`step ${this.step}: micro-batch ${id} counted twice`);
        live.set(id, this.evWorker[e]!);
      } else if (kind === EV_REQUEUED) {
        live.delete(id);
      }
    }
    const missing = [...this.ids].filter((id) => !live.has(id));
    if (missing.length > 0)
      throw new Error(`step ${this.step}: micro-batches ${missing.join(', ')} never completed`);
  }
}

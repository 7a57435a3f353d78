// The coordinator's run state machine (DESIGN.md §2-3): admits workers as replicas at step
// boundaries, deals out each step's micro-batches by credit, starts the all-reduce when the step's
// ledger is whole, commits when every replica's checksums agree with its own, and survives workers
// that vanish at any point (their work is requeued; a reduce in flight is retried under a new
// generation, and nobody has applied anything yet). It owns no sockets: links carry the messages.
import {
  type CoordinatorMessage,
  MicroBatchKind,
  type MicroBatchResult,
  type ReduceResult,
  type Revoked,
} from '../proto/lora_mpt/v1/coordinator.ts';
import type { AdapterReplica } from '../train/replica.ts';
import { type FinalGradient, finalizeGradient } from '../train/replica.ts';
import { Members, type WorkerLink } from './members.ts';
import { StepLedger, type WorkerId } from './step-ledger.ts';

export interface PlannedMicroBatch {
  readonly id: number;
  readonly rows: number;
  readonly seqLen: number;
  readonly inputIds: Int32Array;
  readonly labels: Int32Array;
  readonly attentionMask: Int32Array;
}

export interface CommitInfo {
  /** The step just committed (0-based); the replica now holds `step + 1` updates. */
  readonly step: number;
  readonly generation: number;
  readonly loss: number;
  readonly tokens: number;
  readonly gradNorm: number;
  readonly learningRate: number;
  readonly microBatchesByWorker: ReadonlyMap<WorkerId, number>;
  readonly ledger: StepLedger;
}

export interface StepDriverOptions {
  readonly runId: string;
  readonly modelFingerprint: string;
  readonly totalSteps: number;
  readonly minWorkers: number;
  readonly maxGradNorm: number;
  readonly evalSteps: number;
  readonly replica: AdapterReplica;
  microBatches(step: number): readonly PlannedMicroBatch[];
  readonly evalMicroBatches: readonly PlannedMicroBatch[];
  learningRate(completedSteps: number): number;
  /** Id under which the coordinator observes each all-reduce (members wait for it). */
  readonly observerId: string;
  readonly algorithm: 'shard-owner' | 'ring';
  /**
   * Receives the reduced gradient SUM of a step as a non-contributing replica (src/collective).
   * `signal` fires when the driver gives the round up (a member was lost, another failed).
   */
  observeReduce(
    step: number,
    generation: number,
    members: readonly string[],
    signal: AbortSignal,
  ): Promise<Float32Array>;
  /**
   * First all-reduce generation of this coordinator process. Generations name NATS subjects, so a
   * restarted coordinator starts above any its predecessor can have used (default 1).
   */
  readonly firstGeneration?: number;
  /** After each commit (logs, metrics); evaluation and the next step wait for it. */
  onCommit(info: CommitInfo): Promise<void>;
  onEval(step: number, loss: number, tokens: number): Promise<void>;
  /** After a step and its evaluation (if one was due): checkpoints. `done` = steps completed. */
  afterStep(done: number): Promise<void>;
  log(line: string): void;
  onMismatch?(worker: WorkerId, what: 'gradient' | 'state'): void;
  /** Micro-batch bookkeeping as it happens (lora_mpt_microbatches_total). */
  onMicroBatches?(event: 'assigned' | 'completed' | 'requeued', count: number): void;
}

type Phase =
  | { readonly kind: 'train'; readonly ledger: StepLedger }
  | {
      readonly kind: 'reduce';
      readonly ledger: StepLedger;
      readonly generation: number;
      readonly members: readonly WorkerId[];
      readonly results: Map<WorkerId, ReduceResult>;
      readonly cancel: AbortController;
      own?: FinalGradient;
    }
  | { readonly kind: 'commit' }
  | { readonly kind: 'eval'; readonly ledger: StepLedger; readonly afterStep: number }
  | { readonly kind: 'finished' };

export class StepDriver {
  readonly members = new Members();
  private phase: Phase;
  private generation: number;
  /** Consecutive failed all-reduces of the current step: spaces out retries (NATS may be down). */
  private failedReduces = 0;
  private finish!: (steps: number) => void;
  private fail!: (err: Error) => void;
  /** Resolves with the number of steps done when the run is over. */
  readonly done: Promise<number>;
  private byId = new Map<number, PlannedMicroBatch>();
  private readonly evalById: ReadonlyMap<number, PlannedMicroBatch>;
  private waitingSaid = false;

  constructor(private readonly o: StepDriverOptions) {
    this.done = new Promise((resolve, reject) => {
      this.finish = resolve;
      this.fail = reject;
    });
    this.generation = (o.firstGeneration ?? 1) - 1;
    this.evalById = new Map(o.evalMicroBatches.map((m) => [m.id, m]));
    this.phase = o.replica.step >= o.totalSteps ? { kind: 'finished' } : this.trainPhase(o.replica.step);
  }

  get step(): number {
    return this.o.replica.step;
  }

  private trainPhase(step: number): Phase {
    const planned = this.o.microBatches(step);
    this.byId = new Map(planned.map((m) => [m.id, m]));
    return { kind: 'train', ledger: new StepLedger(step, [...this.byId.keys()]) };
  }

  /** A worker passed the handshake; it loads its model and then reports ready. */
  join(link: WorkerLink): void {
    this.members.add(link);
  }

  onReady(id: WorkerId, fingerprint: string): void {
    const m = this.members.get(id);
    if (!m) return;
    if (fingerprint !== this.o.modelFingerprint) {
      this.lose(
        id,
        `its base model fingerprint ${fingerprint} differs from the run's ${this.o.modelFingerprint}`,
      );
      m.link.close(
        `base model mismatch: the worker loaded a model with fingerprint ${fingerprint}, the run uses ${this.o.modelFingerprint}; mount the same --base_model`,
      );
      return;
    }
    m.phase = 'ready';
    this.syncReady();
    // advance, not dispatch: a step whose micro-batches are all done may be waiting for replicas.
    this.advance();
  }

  onCredit(id: WorkerId, credits: number): void {
    const m = this.members.get(id);
    if (!m) return;
    m.credits += credits;
    this.advance();
  }

  onResult(id: WorkerId, r: MicroBatchResult): void {
    const m = this.members.get(id);
    if (!m) return;
    m.credits += 1; // a result returns the credit its micro-batch used
    const p = this.phase;
    const isEval = r.kind === MicroBatchKind.MICRO_BATCH_KIND_EVAL;
    if (isEval ? p.kind === 'eval' : p.kind === 'train' && r.step === p.ledger.step) {
      const ledger = (p as Extract<Phase, { kind: 'train' | 'eval' }>).ledger;
      // The ledger decides (and records) whether it counts: only from the worker that holds it.
      if (ledger.complete(id, r.id, r.lossSum, r.supervisedTokens)) this.o.onMicroBatches?.('completed', 1);
    } else {
      this.o.log(
        `ignored ${isEval ? 'eval' : 'train'} result of micro-batch ${r.id} (step ${r.step}) from ${id}: the run is at ${this.describe()}`,
      );
    }
    this.advance();
  }

  /** A worker gave back micro-batches it had not started: deal them again. */
  onRevoked(id: WorkerId, r: Revoked): void {
    const m = this.members.get(id);
    if (!m) return;
    m.revoking = false;
    const p = this.phase;
    if ((p.kind === 'train' || p.kind === 'eval') && r.step === p.ledger.step) {
      const back = p.ledger.revoke(id, r.ids);
      if (back.length > 0) {
        this.o.onMicroBatches?.('requeued', back.length);
        this.o.log(`revoked micro-batches ${back.join(', ')} from ${id} before it started them`);
      }
      // Deal them before the straggler gets its credits back, so they go to the idle workers.
      this.advance();
      m.credits += back.length;
    }
    this.advance();
  }

  onReduceResult(id: WorkerId, r: ReduceResult): void {
    const p = this.phase;
    if (
      p.kind !== 'reduce' ||
      r.generation !== p.generation ||
      r.step !== p.ledger.step ||
      !p.members.includes(id)
    ) {
      // A result of an aborted generation, an older step, or from a non-member: it proves nothing now.
      this.o.log(
        `ignored reduce result of step ${r.step} generation ${r.generation} from ${id}: the run is at ${this.describe()}`,
      );
      return;
    }
    p.results.set(id, r);
    this.maybeCommit();
  }

  /** The worker's stream ended or it missed its heartbeat deadline. */
  lose(id: WorkerId, why: string): void {
    const m = this.members.get(id);
    if (!m) return;
    this.members.remove(id);
    this.o.log(`worker ${id} lost: ${why}`);
    const p = this.phase;
    if (p.kind === 'train' || p.kind === 'eval') {
      this.requeue(p.ledger, id);
    } else if (p.kind === 'reduce' && p.members.includes(id)) {
      this.abortReduce(`member ${id} was lost`);
      this.requeue(p.ledger, id);
    }
    this.advance();
  }

  private requeue(ledger: StepLedger, id: WorkerId): void {
    const { done, assigned } = ledger.heldBy(id);
    const back = ledger.releaseWorker(id);
    if (back.length === 0) return;
    this.o.onMicroBatches?.('requeued', back.length);
    this.o.log(
      `requeued micro-batches ${back.join(', ')} of ${id} (step index ${ledger.step}; computed [${done.join(', ')}], held [${assigned.join(', ')}])`,
    );
  }

  /**
   * Workers holding a micro-batch of the current step or evaluation for longer than `ms` since it
   * was dealt (queued ones count: the deadline must cover max_in_flight computes), with the ids.
   */
  overdueWorkers(ms: number): Map<WorkerId, number[]> {
    const p = this.phase;
    if (p.kind !== 'train' && p.kind !== 'eval') return new Map();
    return p.ledger.overdue(ms);
  }

  /** Stops the run (e.g. on SIGTERM): tells every worker and resolves `done`. */
  stop(reason: string): void {
    this.finishRun(reason);
  }

  private syncReady(): void {
    // State moves only between commits: a replica that joins mid-reduce would miss the gradient.
    if (this.phase.kind === 'reduce' || this.phase.kind === 'commit') return;
    const s = this.o.replica.state;
    for (const m of this.members.inPhase('ready')) {
      m.link.send({ body: { $case: 'stateSync', value: this.stateSync() } });
      m.phase = 'synced';
      this.o.log(
        `worker ${m.link.id} is a replica from step ${this.step} (${s.params.length} adapter values)`,
      );
    }
  }

  private stateSync() {
    const s = this.o.replica.state;
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    return {
      step: this.step,
      optimizerSteps: s.step,
      names: this.o.replica.layout.specs.map((x) => x.name),
      params: bytes(s.params),
      expAvg: bytes(s.expAvg),
      expAvgSq: bytes(s.expAvgSq),
      checksum: this.o.replica.checksum(),
    };
  }

  private enoughWorkers(): boolean {
    const n = this.members.inPhase('synced').length;
    if (n >= this.o.minWorkers) {
      if (this.waitingSaid) this.o.log(`${n} workers ready: resuming`);
      this.waitingSaid = false;
      return true;
    }
    if (!this.waitingSaid) {
      this.o.log(`paused: ${n} of the ${this.o.minWorkers} workers --min_workers asks for are ready`);
      this.waitingSaid = true;
    }
    return false;
  }

  private dispatch(): void {
    const p = this.phase;
    if (p.kind !== 'train' && p.kind !== 'eval') return;
    if (!this.enoughWorkers()) return;
    const source = p.kind === 'eval' ? this.evalById : this.byId;
    const kind =
      p.kind === 'eval' ? MicroBatchKind.MICRO_BATCH_KIND_EVAL : MicroBatchKind.MICRO_BATCH_KIND_TRAIN;
    // One micro-batch per worker per round, so credits, not stream order, decide who takes more.
    let gave = true;
    while (gave && p.ledger.pending > 0) {
      gave = false;
      for (const m of this.members.inPhase('synced')) {
        if (m.credits <= 0) continue;
        const id = p.ledger.assignNext(m.link.id);
        if (id === undefined) break;
        const mb = source.get(id)!;
        this.o.onMicroBatches?.('assigned', 1);
        m.credits -= 1;
        gave = true;
        m.link.send({ body: { $case: 'microBatch', value: toWire(mb, p.ledger.step, kind) } });
      }
    }
    if (p.ledger.pending === 0) this.revokeForIdle(p.ledger);
  }

  /**
   * The step's tail: nothing is pending, yet a worker is idle while another holds micro-batches
   * queued behind the one it computes (a straggler). Ask the holder to give back those it has not
   * started; it keeps (and reports) any it has, so nothing is computed twice.
   */
  private revokeForIdle(ledger: StepLedger): void {
    const synced = this.members.inPhase('synced');
    const holding = new Map(synced.map((m) => [m.link.id, ledger.heldNow(m.link.id)]));
    if (!synced.some((m) => m.credits > 0 && holding.get(m.link.id)!.length === 0)) return;
    for (const m of synced) {
      const ids = holding.get(m.link.id)!;
      if (m.revoking || ids.length < 2) continue;
      m.revoking = true;
      m.link.send({ body: { $case: 'revoke', value: { step: ledger.step, ids } } });
    }
  }

  private advance(): void {
    const p = this.phase;
    if (p.kind === 'train' && p.ledger.isComplete) this.startReduce(p.ledger);
    else if (p.kind === 'eval' && p.ledger.isComplete) void this.endEval(p.ledger, p.afterStep);
    else this.dispatch();
  }

  private startReduce(ledger: StepLedger): void {
    if (!this.enoughWorkers()) return;
    const members = this.members.inPhase('synced').map((m) => m.link.id);
    const generation = ++this.generation;
    const cancel = new AbortController();
    const phase: Phase = { kind: 'reduce', ledger, generation, members, results: new Map(), cancel };
    this.phase = phase;
    const { tokens } = ledger.totals();
    for (const id of members) {
      this.members.get(id)!.link.send({
        body: {
          $case: 'reduceStart',
          value: {
            step: ledger.step,
            generation,
            members: [...members],
            totalSupervisedTokens: tokens,
            observers: [this.o.observerId],
            algorithm: this.o.algorithm,
          },
        },
      });
    }
    this.o.observeReduce(ledger.step, generation, members, cancel.signal).then(
      (sum) => {
        if (this.phase !== phase) return;
        phase.own = finalizeGradient(sum, tokens, this.o.maxGradNorm);
        this.maybeCommit();
      },
      (err: Error) => {
        if (this.phase !== phase) return;
        this.abortReduce(`the coordinator's replica did not receive the reduced gradient: ${err.message}`);
        this.retryReduce(ledger);
      },
    );
  }

  private abortReduce(reason: string): void {
    const p = this.phase;
    if (p.kind !== 'reduce') return;
    this.o.log(`step ${p.ledger.step} generation ${p.generation} aborted: ${reason}`);
    p.cancel.abort();
    for (const id of p.members) {
      this.members.get(id)?.link.send({
        body: { $case: 'stepAbort', value: { step: p.ledger.step, generation: p.generation, reason } },
      });
    }
    this.phase = { kind: 'train', ledger: p.ledger };
    // Replicas that became ready during the round may join the retry.
    this.syncReady();
  }

  private retryReduce(ledger: StepLedger): void {
    // 200 ms, doubling to 5 s: a NATS server that is restarting is not hammered with rounds.
    const wait = Math.min(200 * 2 ** this.failedReduces, 5000);
    this.failedReduces++;
    this.o.log(`retrying step ${ledger.step} under a new generation in ${wait} ms`);
    setTimeout(() => {
      if (this.phase.kind === 'train' && this.phase.ledger === ledger) this.advance();
    }, wait).unref();
  }

  private maybeCommit(): void {
    const p = this.phase;
    if (p.kind !== 'reduce' || !p.own || p.results.size < p.members.length) return;
    const failed = [...p.results].filter(([, r]) => r.error !== '');
    if (failed.length > 0) {
      this.abortReduce(failed.map(([id, r]) => `${id}: ${r.error}`).join('; '));
      this.retryReduce(p.ledger);
      return;
    }
    const stateNow = this.o.replica.checksum();
    const badGrad = [...p.results].filter(([, r]) => r.checksum !== p.own!.checksum).map(([id]) => id);
    if (badGrad.length > 0) {
      for (const id of badGrad) this.o.onMismatch?.(id, 'gradient');
      this.abortReduce(`reduced-gradient checksum differs on ${badGrad.join(', ')}`);
      this.retryReduce(p.ledger);
      return;
    }
    const diverged = [...p.results].filter(([, r]) => r.stateChecksum !== stateNow).map(([id]) => id);
    if (diverged.length > 0) {
      // A diverged replica computed its micro-batches with wrong weights: repair it, redo its share.
      for (const id of diverged) this.o.onMismatch?.(id, 'state');
      this.abortReduce(`replica state differs from the coordinator's on ${diverged.join(', ')}`);
      for (const id of diverged) {
        this.o.log(`re-sending the coordinator's state to ${id}`);
        this.members.get(id)?.link.send({ body: { $case: 'stateSync', value: this.stateSync() } });
        this.requeue(p.ledger, id);
      }
      this.advance();
      return;
    }
    void this.commit(p);
  }

  private async commit(p: Extract<Phase, { kind: 'reduce' }>): Promise<void> {
    this.phase = { kind: 'commit' };
    this.failedReduces = 0;
    const step = p.ledger.step;
    const lr = this.o.learningRate(this.o.replica.step);
    const { lossSum, tokens, byWorker } = p.ledger.totals();
    p.ledger.audit();
    this.o.replica.apply(p.own!.grad, lr);
    for (const id of p.members) {
      this.members.get(id)?.link.send({
        body: {
          $case: 'stepCommit',
          value: { step, generation: p.generation, learningRate: lr, maxGradNorm: this.o.maxGradNorm },
        },
      });
    }
    try {
      await this.o.onCommit({
        step,
        generation: p.generation,
        loss: lossSum / tokens,
        tokens,
        gradNorm: p.own!.norm,
        learningRate: lr,
        microBatchesByWorker: byWorker,
        ledger: p.ledger,
      });
    } catch (err) {
      this.failRun(err as Error);
      return;
    }
    const next = this.o.replica.step;
    if (this.o.evalMicroBatches.length > 0 && (next % this.o.evalSteps === 0 || next >= this.o.totalSteps)) {
      this.phase = {
        kind: 'eval',
        afterStep: step,
        ledger: new StepLedger(
          step,
          this.o.evalMicroBatches.map((m) => m.id),
        ),
      };
      this.syncReady();
      this.advance();
      return;
    }
    await this.nextStep();
  }

  /** Checkpoint hook, then the next step or the end of the run. */
  private async nextStep(): Promise<void> {
    this.phase = { kind: 'commit' };
    try {
      await this.o.afterStep(this.o.replica.step);
    } catch (err) {
      this.failRun(err as Error);
      return;
    }
    if (this.o.replica.step >= this.o.totalSteps) {
      this.finishRun('all steps done');
      return;
    }
    this.phase = this.trainPhase(this.o.replica.step);
    this.syncReady();
    this.advance();
  }

  private async endEval(ledger: StepLedger, afterStep: number): Promise<void> {
    this.phase = { kind: 'commit' };
    const { lossSum, tokens } = ledger.totals();
    try {
      await this.o.onEval(afterStep, tokens > 0 ? lossSum / tokens : Number.NaN, tokens);
    } catch (err) {
      this.failRun(err as Error);
      return;
    }
    await this.nextStep();
  }

  private finishRun(reason: string): void {
    if (this.phase.kind === 'finished' && reason !== 'all steps done') return;
    this.phase = { kind: 'finished' };
    for (const m of this.members.all()) {
      m.link.send({ body: { $case: 'finished', value: { steps: this.step, reason } } });
    }
    this.finish(this.step);
  }

  private failRun(err: Error): void {
    this.phase = { kind: 'finished' };
    for (const m of this.members.all()) {
      m.link.send({
        body: { $case: 'finished', value: { steps: this.step, reason: `run failed: ${err.message}` } },
      });
    }
    this.fail(err);
  }

  /** For status lines: what the run is doing now. */
  describe(): string {
    const p = this.phase;
    const n = this.members.inPhase('synced').length;
    switch (p.kind) {
      case 'train':
        return `step ${p.ledger.step}: ${p.ledger.pending} micro-batches pending, ${n} workers`;
      case 'reduce':
        return `step ${p.ledger.step}: all-reduce generation ${p.generation} (${p.results.size}/${p.members.length})`;
      case 'eval':
        return `evaluating after step ${p.afterStep}: ${p.ledger.pending} pending`;
      default:
        return p.kind;
    }
  }
}

function toWire(
  mb: PlannedMicroBatch,
  step: number,
  kind: MicroBatchKind,
): Extract<CoordinatorMessage['body'], { $case: 'microBatch' }>['value'] {
  return {
    id: mb.id,
    step,
    kind,
    rows: mb.rows,
    seqLen: mb.seqLen,
    inputIds: Array.from(mb.inputIds),
    labels: Array.from(mb.labels),
    attentionMask: Array.from(mb.attentionMask),
  };
}

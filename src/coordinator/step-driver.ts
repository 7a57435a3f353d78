// The run's state machine (DESIGN.md §2-3), the one step loop of lora-mpt: admits workers as
// replicas at step boundaries, has the dealer hand out each step's micro-batches, starts the
// all-reduce when the step's ledger is whole, commits when every replica's checksums agree with its
// own, evaluates every eval_steps, and survives workers that vanish at any point (their work is
// requeued; a reduce in flight is retried under a new generation, and nobody has applied anything
// yet). It owns no sockets: links carry the messages (gRPC for `coordinator`, in-process for
// `finetune`), so N workers and one worker run the very same code.

import { type AllReduceAlgorithm, AllReduceProtocolError } from '../collective/index.ts';
import type { MicroBatch } from '../data/micro-batch.ts';
import type { Events } from '../events/events.ts';
import {
  finishedMessage,
  floatBytes,
  MicroBatchKind,
  reduceStartMessage,
  stateSyncMessage,
  stepAbortMessage,
  stepCommitMessage,
} from '../protocol/messages.ts';
import { peerText } from '../protocol/peer-text.ts';
import type { MicroBatchResult, ReduceResult, Revoked } from '../protocol/wire.ts';
import type { AdapterReplica } from '../train/replica.ts';
import { type FinalGradient, finalizeGradient } from '../train/replica.ts';
import { Dealer } from './dealer.ts';
import { type GradientOutlier, gradientOutliers } from './gradient-outliers.ts';
import { Members, type WorkerLink } from './members.ts';
import { MicroBatchTimes } from './microbatch-deadline.ts';
import { judge } from './reduce-verdict.ts';
import { checkResult } from './result-check.ts';
import { StepLedger, type WorkerId } from './step-ledger.ts';

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
  /** Run totals so far (this process): replica checksum mismatches and requeued micro-batches. */
  readonly replicaMismatches: number;
  readonly microBatchesRequeued: number;
}

/** How the run ended: every step done, or stopped (SIGTERM) before that. */
export interface RunOutcome {
  readonly steps: number;
  readonly finished: boolean;
  readonly reason: string;
}

export interface StepDriverOptions {
  readonly runId: string;
  readonly modelFingerprint: string;
  readonly totalSteps: number;
  readonly minWorkers: number;
  readonly maxGradNorm: number;
  readonly evalSteps: number;
  readonly replica: AdapterReplica;
  microBatches(step: number): readonly MicroBatch[];
  readonly evalMicroBatches: readonly MicroBatch[];
  learningRate(completedSteps: number): number;
  /** Id under which the coordinator observes each all-reduce (members wait for it). */
  readonly observerId: string;
  readonly algorithm: AllReduceAlgorithm;
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
  readonly events: Events;
  onMismatch?(worker: WorkerId, what: 'gradient' | 'state'): void;
  /** Micro-batch bookkeeping as it happens (lora_mpt_microbatches_total). */
  onMicroBatches?(event: 'assigned' | 'completed' | 'requeued', count: number): void;
  /** A worker was lost mid-run (lora_mpt_workers_lost_total); not called for one leaving a finished run. */
  onWorkerLost?(worker: WorkerId): void;
  /** A worker's result or all-reduce data was refused (non-finite, miscounted); `dropped`: for good. */
  onRefusedResult?(worker: WorkerId, dropped: boolean): void;
  /** A worker's gradients in a committed step were far from the others' (reported, not refused). */
  onGradientOutlier?(outlier: GradientOutlier, step: number): void;
}

/** Refused results a worker may produce: the first costs its session (it reconnects), this many its place. */
export const OFFENCES_BEFORE_DROP = 2;
/** Consecutive non-finite reduced sums nobody can be blamed for before the run stops with an error. */
const MAX_UNATTRIBUTED_NONFINITE = 3;

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

/** Is an eval due after `done` steps? The one place the eval cadence is written. */
export function evalDue(done: number, evalSteps: number, totalSteps: number): boolean {
  return done % evalSteps === 0 || done >= totalSteps;
}

export class StepDriver {
  readonly members = new Members();
  private readonly dealer: Dealer;
  private phase: Phase;
  private generation: number;
  /** Consecutive failed all-reduces of the current step: spaces out retries (NATS may be down). */
  private failedReduces = 0;
  private settle!: (outcome: RunOutcome) => void;
  private fail!: (err: Error) => void;
  /** Resolves when the run is over: finished, or stopped. Rejects when a hook failed. */
  readonly done: Promise<RunOutcome>;
  private byId = new Map<number, MicroBatch>();
  private readonly evalById: ReadonlyMap<number, MicroBatch>;
  private readonly events: Events;
  private mismatches = 0;
  private requeued = 0;
  /** Refused results per worker id over the run; OFFENCES_BEFORE_DROP drops the worker for good. */
  private readonly offences = new Map<string, number>();
  /** Worker ids dropped for good: their Hello is refused for the rest of the run. */
  readonly dropped = new Set<string>();
  /** Generation and worker of blames already acted on (one round's blame arrives from several members). */
  private readonly blamed = new Set<string>();
  private unattributedNonFinite = 0;
  /** Each worker's measured micro-batch times (deal to report): its own default deadline. */
  private readonly times = new Map<WorkerId, MicroBatchTimes>();

  constructor(private readonly o: StepDriverOptions) {
    this.done = new Promise((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    this.events = o.events;
    this.dealer = new Dealer(this.members, o.minWorkers, o.events, (n) => o.onMicroBatches?.('assigned', n));
    this.generation = (o.firstGeneration ?? 1) - 1;
    this.evalById = new Map(o.evalMicroBatches.map((m) => [m.id, m]));
    this.phase = o.replica.step >= o.totalSteps ? { kind: 'finished' } : this.trainPhase(o.replica.step);
  }

  get step(): number {
    return this.o.replica.step;
  }

  get isFinished(): boolean {
    return this.phase.kind === 'finished';
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
    // advance, not deal: a step whose micro-batches are all done may be waiting for replicas.
    this.advance();
  }

  onCredit(id: WorkerId, credits: number): void {
    const m = this.members.get(id);
    if (!m) return;
    this.members.grant(m, credits, this.held(id));
    this.advance();
  }

  onResult(id: WorkerId, r: MicroBatchResult): void {
    const m = this.members.get(id);
    if (!m) return;
    const p = this.phase;
    const isEval = r.kind === MicroBatchKind.MICRO_BATCH_KIND_EVAL;
    if (isEval ? p.kind === 'eval' : p.kind === 'train' && r.step === p.ledger.step) {
      const ledger = (p as Extract<Phase, { kind: 'train' | 'eval' }>).ledger;
      const mb = (isEval ? this.evalById : this.byId).get(r.id);
      const checked = mb && checkResult(mb, r, !isEval);
      if (checked && !checked.ok) {
        this.refuse(id, checked.why);
        return;
      }
      const dealt = ledger.assignedAt(r.id, id);
      // The ledger decides (and records) whether it counts: only from the worker that holds it.
      if (ledger.complete(id, r.id, r.lossSum, checked ? checked.tokens : r.supervisedTokens, r.gradNorm)) {
        this.o.onMicroBatches?.('completed', 1);
        if (dealt !== undefined) {
          const t = this.times.get(id) ?? new MicroBatchTimes();
          t.record(Date.now() - dealt);
          this.times.set(id, t);
        }
      }
    } else {
      this.events.info(
        'result_ignored',
        `ignored ${isEval ? 'eval' : 'train'} result of micro-batch ${r.id} (step ${r.step}) from ${id}: the run is at ${this.describe()}`,
        { worker: id, step: r.step, micro_batch: r.id },
      );
    }
    this.members.grant(m, 1, this.held(id)); // a result returns the credit its micro-batch used
    this.advance();
  }

  /** Micro-batches `id` holds now (dealt, not reported) in the current step or evaluation. */
  private held(id: WorkerId): number {
    const p = this.phase;
    return p.kind === 'train' || p.kind === 'eval' ? p.ledger.heldNow(id).length : 0;
  }

  /**
   * How long worker `id` may hold a micro-batch (from being dealt) before it is lost: `fixedMs` when
   * set, else derived from its own measured micro-batch times (a slow but honest GPU gets more
   * time, a worker that took work fast and then hoards gets little), at least `floorMs`.
   */
  microBatchDeadline(id: WorkerId, floorMs: number, fixedMs?: number): number {
    if (fixedMs !== undefined && fixedMs > 0) return fixedMs;
    return (this.times.get(id) ?? new MicroBatchTimes()).deadline(floorMs);
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
        this.countRequeued(back.length);
        this.events.info(
          'microbatches_revoked',
          `revoked micro-batches ${back.join(', ')} from ${id} before it started them`,
          { worker: id, step: p.ledger.step, micro_batches: back },
        );
      }
      // Deal them before the straggler gets its credits back, so they go to the idle workers.
      this.advance();
      this.members.grant(m, back.length, this.held(id));
    }
    this.advance();
  }

  onReduceResult(id: WorkerId, r: ReduceResult): void {
    const p = this.phase;
    // A member found another's all-reduce data bad (non-finite, forged, contradictory). It may
    // answer after the round was already aborted (our own observer heard its abort first).
    if (r.blame !== '' && this.members.get(id)?.phase === 'synced' && r.step === this.currentStep()) {
      this.blame(r.blame, r.generation, `${id} reports: ${peerText(r.error, 512)}`);
      if (this.phase !== p) return;
    }
    if (
      p.kind !== 'reduce' ||
      r.generation !== p.generation ||
      r.step !== p.ledger.step ||
      !p.members.includes(id)
    ) {
      // A result of an aborted generation, an older step, or from a non-member: it proves nothing now.
      this.events.info(
        'reduce_result_ignored',
        `ignored reduce result of step ${r.step} generation ${r.generation} from ${id}: the run is at ${this.describe()}`,
        { worker: id, step: r.step, generation: r.generation },
      );
      return;
    }
    p.results.set(id, r);
    this.maybeCommit();
  }

  private currentStep(): number | undefined {
    const p = this.phase;
    return p.kind === 'train' || p.kind === 'reduce' ? p.ledger.step : undefined;
  }

  /** Acts once per (generation, worker) on a blame for bad all-reduce data. */
  private blame(worker: string, generation: number, why: string): void {
    const key = `${generation}:${worker}`;
    if (this.blamed.has(key) || !this.members.has(worker)) return;
    this.blamed.add(key);
    this.refuse(worker as WorkerId, `its all-reduce data of generation ${generation} was refused (${why})`);
  }

  /**
   * A worker sent what cannot be counted. Its micro-batches of the step go back to the queue (its
   * accumulator may hold the bad values) and its session ends: the first time it reconnects and is
   * re-synced with a zeroed accumulator; the OFFENCES_BEFORE_DROP-th time it is dropped from the run.
   */
  private refuse(id: WorkerId, why: string): void {
    const m = this.members.get(id);
    if (!m) return;
    const n = (this.offences.get(id) ?? 0) + 1;
    this.offences.set(id, n);
    const dropped = n >= OFFENCES_BEFORE_DROP;
    if (dropped) this.dropped.add(id);
    this.events.warn(
      'result_refused',
      `refused a result of worker ${id} (${n} of ${OFFENCES_BEFORE_DROP}): ${why}; ${dropped ? 'dropped from the run' : 'its session is reset'}`,
      { worker: id, step: this.step, why, offences: n, dropped },
    );
    this.o.onRefusedResult?.(id, dropped);
    this.lose(id, `result refused: ${why}`);
    if (dropped) m.link.close(`dropped from run ${this.o.runId}: ${why} (${n} refused results)`);
    else m.link.drop(`result refused: ${why}; reconnect to be re-synced`);
  }

  /** The worker's stream ended or it missed its heartbeat deadline. */
  lose(id: WorkerId, why: string): void {
    const m = this.members.get(id);
    if (!m) return;
    this.members.remove(id);
    if (this.phase.kind === 'finished') {
      this.events.info('worker_left', `worker ${id} left the finished run`, { worker: id });
      return;
    }
    this.events.warn('worker_lost', `worker ${id} lost: ${why}`, { worker: id, step: this.step, why });
    this.o.onWorkerLost?.(id);
    const p = this.phase;
    if (p.kind === 'train' || p.kind === 'eval') {
      this.requeue(p.ledger, id);
    } else if (p.kind === 'reduce' && p.members.includes(id)) {
      this.abortReduce(`member ${id} was lost`);
      this.requeue(p.ledger, id);
    }
    this.advance();
  }

  private countRequeued(n: number): void {
    this.requeued += n;
    this.o.onMicroBatches?.('requeued', n);
  }

  private requeue(ledger: StepLedger, id: WorkerId): void {
    const { done, assigned } = ledger.heldBy(id);
    const back = ledger.releaseWorker(id);
    if (back.length === 0) return;
    this.countRequeued(back.length);
    this.events.info(
      'microbatches_requeued',
      `requeued micro-batches ${back.join(', ')} of ${id} (step index ${ledger.step}; computed [${done.join(', ')}], held [${assigned.join(', ')}])`,
      { worker: id, step: ledger.step, micro_batches: back, computed: done, held: assigned },
    );
  }

  /**
   * Workers holding a micro-batch of the current step or evaluation for longer than `ms` since it
   * was dealt (queued ones count: the deadline must cover max_in_flight computes), with the ids.
   */
  overdueWorkers(ms: number | ((worker: WorkerId) => number)): Map<WorkerId, number[]> {
    const p = this.phase;
    if (p.kind !== 'train' && p.kind !== 'eval') return new Map();
    return p.ledger.overdue(ms);
  }

  /** Stops the run before its end (SIGTERM): tells every worker and resolves `done`. */
  stop(reason: string): void {
    this.end({ steps: this.step, finished: this.step >= this.o.totalSteps, reason });
  }

  /** Ends the run with an error (an in-process worker failed): tells every worker, rejects `done`. */
  abort(err: Error): void {
    this.failRun(err);
  }

  private syncReady(): void {
    // State moves only between commits: a replica that joins mid-reduce would miss the gradient.
    if (this.phase.kind === 'reduce' || this.phase.kind === 'commit') return;
    for (const m of this.members.inPhase('ready')) {
      m.link.send(stateSyncMessage(this.stateSync()));
      m.phase = 'synced';
      this.events.info(
        'worker_synced',
        `worker ${m.link.id} is a replica from step ${this.step} (${this.o.replica.layout.size} adapter values)`,
        { worker: m.link.id, step: this.step },
      );
    }
  }

  private stateSync() {
    const s = this.o.replica.state;
    return {
      step: this.step,
      optimizerSteps: s.step,
      names: this.o.replica.layout.specs.map((x) => x.name),
      params: floatBytes(s.params),
      expAvg: floatBytes(s.expAvg),
      expAvgSq: floatBytes(s.expAvgSq),
      checksum: this.o.replica.checksum(),
    };
  }

  private advance(): void {
    const p = this.phase;
    if (p.kind === 'train' && p.ledger.isComplete) this.startReduce(p.ledger);
    else if (p.kind === 'eval' && p.ledger.isComplete) void this.endEval(p.ledger, p.afterStep);
    else if (p.kind === 'train') this.dealer.deal(p.ledger, this.byId, MicroBatchKind.MICRO_BATCH_KIND_TRAIN);
    else if (p.kind === 'eval')
      this.dealer.deal(p.ledger, this.evalById, MicroBatchKind.MICRO_BATCH_KIND_EVAL);
  }

  private startReduce(ledger: StepLedger): void {
    if (!this.dealer.enoughWorkers()) return;
    const members = this.members.inPhase('synced').map((m) => m.link.id);
    const generation = ++this.generation;
    const cancel = new AbortController();
    const phase: Phase = { kind: 'reduce', ledger, generation, members, results: new Map(), cancel };
    this.phase = phase;
    const { tokens } = ledger.totals();
    const start = reduceStartMessage({
      step: ledger.step,
      generation,
      members: [...members],
      totalSupervisedTokens: tokens,
      observers: [this.o.observerId],
      algorithm: this.o.algorithm,
    });
    for (const id of members) this.members.get(id)!.link.send(start);
    this.o.observeReduce(ledger.step, generation, members, cancel.signal).then(
      (sum) => {
        if (this.phase !== phase) return;
        const own = finalizeGradient(sum, tokens, this.o.maxGradNorm);
        if (!Number.isFinite(own.norm)) {
          this.nonFiniteSum(ledger, own.norm);
          return;
        }
        phase.own = own;
        this.maybeCommit();
      },
      (err: Error) => {
        if (this.phase !== phase) return;
        this.abortReduce(`the coordinator's replica did not receive the reduced gradient: ${err.message}`);
        // Our own observer refused a member's bytes (non-finite, forged, contradictory): no one else to trust.
        if (err instanceof AllReduceProtocolError && this.members.has(err.member))
          this.blame(err.member, generation, err.message);
        const now = this.phase as Phase;
        if (now.kind === 'train' && now.ledger === ledger) this.retryReduce(ledger);
      },
    );
  }

  private abortReduce(reason: string): void {
    const p = this.phase;
    if (p.kind !== 'reduce') return;
    this.events.warn(
      'reduce_aborted',
      `step ${p.ledger.step} generation ${p.generation} aborted: ${reason}`,
      {
        step: p.ledger.step,
        generation: p.generation,
        reason,
        members: [...p.members],
      },
    );
    p.cancel.abort();
    const abort = stepAbortMessage(p.ledger.step, p.generation, reason);
    for (const id of p.members) this.members.get(id)?.link.send(abort);
    this.phase = { kind: 'train', ledger: p.ledger };
    // Replicas that became ready during the round may join the retry.
    this.syncReady();
  }

  /**
   * The reduced sum is not finite although every contribution passed the members' checks (finite
   * values that overflow when added). Never committed: retried, and the run stops after a few.
   */
  private nonFiniteSum(ledger: StepLedger, norm: number): void {
    this.unattributedNonFinite++;
    this.abortReduce(`the reduced gradient is not finite (norm ${norm})`);
    if (this.unattributedNonFinite >= MAX_UNATTRIBUTED_NONFINITE) {
      this.failRun(
        new Error(
          `step ${ledger.step}: the reduced gradient was not finite ${this.unattributedNonFinite} times in a row; nothing was committed (check the learning rate and the data)`,
        ),
      );
      return;
    }
    this.retryReduce(ledger);
  }

  private retryReduce(ledger: StepLedger): void {
    // 200 ms, doubling to 5 s: a NATS server that is restarting is not hammered with rounds.
    const wait = Math.min(200 * 2 ** this.failedReduces, 5000);
    this.failedReduces++;
    this.events.info('reduce_retry', `retrying step ${ledger.step} under a new generation in ${wait} ms`, {
      step: ledger.step,
      wait_ms: wait,
    });
    setTimeout(() => {
      if (this.phase.kind === 'train' && this.phase.ledger === ledger) this.advance();
    }, wait).unref();
  }

  private maybeCommit(): void {
    const p = this.phase;
    if (p.kind !== 'reduce' || !p.own || p.results.size < p.members.length) return;
    const verdict = judge(p.results, { gradient: p.own.checksum, state: this.o.replica.checksum() });
    switch (verdict.kind) {
      case 'commit':
        void this.commit(p);
        return;
      case 'failed':
        this.abortReduce([...verdict.errors].map(([id, e]) => `${id}: ${peerText(e, 512)}`).join('; '));
        this.retryReduce(p.ledger);
        return;
      case 'gradient-mismatch':
        for (const id of verdict.workers) this.mismatch(id, 'gradient');
        this.abortReduce(`reduced-gradient checksum differs on ${verdict.workers.join(', ')}`);
        this.retryReduce(p.ledger);
        return;
      case 'diverged':
        // A diverged replica computed its micro-batches with wrong weights: repair it, redo its share.
        for (const id of verdict.workers) this.mismatch(id, 'state');
        this.abortReduce(`replica state differs from the coordinator's on ${verdict.workers.join(', ')}`);
        for (const id of verdict.workers) {
          this.events.info('state_resent', `re-sending the coordinator's state to ${id}`, { worker: id });
          this.members.get(id)?.link.send(stateSyncMessage(this.stateSync()));
          this.requeue(p.ledger, id);
        }
        this.advance();
        return;
    }
  }

  private reportOutliers(ledger: StepLedger): void {
    for (const o of gradientOutliers(ledger.gradientSizes())) {
      this.events.warn(
        'gradient_outlier',
        `worker ${o.worker}'s gradients in step ${ledger.step} are ${(o.perToken / o.othersPerToken).toPrecision(3)}x the other workers' (norm per token ${o.perToken.toPrecision(3)} vs ${o.othersPerToken.toPrecision(3)})`,
        { worker: o.worker, step: ledger.step, per_token: o.perToken, others_per_token: o.othersPerToken },
      );
      this.o.onGradientOutlier?.(o, ledger.step);
    }
  }

  private mismatch(id: WorkerId, what: 'gradient' | 'state'): void {
    this.mismatches++;
    this.o.onMismatch?.(id, what);
  }

  private async commit(p: Extract<Phase, { kind: 'reduce' }>): Promise<void> {
    this.phase = { kind: 'commit' };
    this.failedReduces = 0;
    this.unattributedNonFinite = 0;
    this.reportOutliers(p.ledger);
    const step = p.ledger.step;
    const lr = this.o.learningRate(this.o.replica.step);
    const { lossSum, tokens, byWorker } = p.ledger.totals();
    p.ledger.audit();
    this.o.replica.apply(p.own!.grad, lr);
    const commit = stepCommitMessage(step, p.generation, lr, this.o.maxGradNorm);
    for (const id of p.members) this.members.get(id)?.link.send(commit);
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
        replicaMismatches: this.mismatches,
        microBatchesRequeued: this.requeued,
      });
    } catch (err) {
      this.failRun(err as Error);
      return;
    }
    const next = this.o.replica.step;
    if (this.o.evalMicroBatches.length > 0 && evalDue(next, this.o.evalSteps, this.o.totalSteps)) {
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
      this.end({ steps: this.step, finished: true, reason: 'all steps done' });
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

  private end(outcome: RunOutcome): void {
    if (this.phase.kind === 'reduce') this.phase.cancel.abort();
    this.phase = { kind: 'finished' };
    const bye = finishedMessage(outcome.steps, outcome.reason);
    for (const m of this.members.all()) m.link.send(bye);
    this.settle(outcome);
  }

  private failRun(err: Error): void {
    if (this.phase.kind === 'reduce') this.phase.cancel.abort();
    this.phase = { kind: 'finished' };
    const bye = finishedMessage(this.step, `run failed: ${err.message}`);
    for (const m of this.members.all()) m.link.send(bye);
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

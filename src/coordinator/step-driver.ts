// The run's state machine (DESIGN.md §2-3): admits workers as replicas at step boundaries, has the
// dealer hand out each step's micro-batches, starts the all-reduce when the ledger is whole, commits
// when every replica's checksums agree with its own, evaluates every eval_steps, and survives
// workers that vanish at any point (work requeued; a reduce in flight retried under a new
// generation). No sockets: links carry the messages (gRPC, or in-process for `finetune`), so N
// workers and one run the same code. What a worker's message does: worker-reports.ts (extended
// here); who pays for bad data: offences.ts; rounds: reduce-rounds.ts; step boundaries:
// step-journal.ts. Watchers (metrics, status page) follow its typed events (src/events/names.ts).

import { type AllReduceAlgorithm, AllReduceProtocolError } from '../collective/index.ts';
import type { MicroBatch } from '../data/micro-batch.ts';
import type { Events } from '../events/events.ts';
import { finishedMessage, MicroBatchKind, stepCommitMessage } from '../protocol/messages.ts';
import { peerText } from '../protocol/peer-text.ts';
import type { ReduceResult } from '../protocol/wire.ts';
import type { AdapterReplica, FinalGradient } from '../train/replica.ts';
import type { FrameRules } from './accusations.ts';
import { Dealer } from './dealer.ts';
import { gradientOutliers } from './gradient-outliers.ts';
import { type ReduceRound, ReduceRounds } from './reduce-rounds.ts';
import { judge } from './reduce-verdict.ts';
import type { StepJournal } from './step-journal.ts';
import { StepLedger, type WorkerId } from './step-ledger.ts';
import { WorkerReports } from './worker-reports.ts';

/** How the run ended: every step done, or stopped (SIGTERM) before that. */
export interface RunOutcome {
  readonly steps: number;
  readonly finished: boolean;
  readonly reason: string;
}

/** The run, its plan, and what the driver waits on: the all-reduce's sum (observeReduce) and the
 * journal (onCommit, onEval, afterStep: records and checkpoints the next step waits for). */
export interface StepDriverOptions extends StepJournal {
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
    nodes: readonly string[],
    /** Raw Ed25519 keys of members ++ observers, when every participant has one. */
    participantKeys?: readonly Uint8Array[],
  ): Promise<Float32Array>;
  /** Raw Ed25519 public key the observer signs its frames with (members check it). */
  readonly observerPublicKey?: Uint8Array;
  /** The run's frame rules: a blame with a frame its accused signed is proven (accusations.ts). */
  readonly frameRules?: FrameRules;
  /**
   * First all-reduce generation of this coordinator process. Generations name NATS subjects, so a
   * restarted coordinator starts above any its predecessor can have used (default 1).
   */
  readonly firstGeneration?: number;
  /** What happened, for people and for listeners (metrics, the status page): src/events/names.ts. */
  readonly events: Events;
  /**
   * Refuse contributions the shard owners' measures condemn, with this outlier factor (0: only
   * lying norms); undefined: no check (the algorithm has no shard owners). contribution-check.ts.
   */
  readonly contributionNormFactor?: number | undefined;
}

export type Phase =
  | { readonly kind: 'train'; readonly ledger: StepLedger }
  | {
      readonly kind: 'reduce';
      readonly ledger: StepLedger;
      readonly round: ReduceRound;
      readonly results: Map<WorkerId, ReduceResult>;
      own?: FinalGradient;
    }
  | { readonly kind: 'commit' }
  | { readonly kind: 'eval'; readonly ledger: StepLedger; readonly afterStep: number }
  | { readonly kind: 'finished' };

/** Is an eval due after `done` steps? The one place the eval cadence is written. */
export function evalDue(done: number, evalSteps: number, totalSteps: number): boolean {
  return done % evalSteps === 0 || done >= totalSteps;
}

export class StepDriver extends WorkerReports {
  private readonly dealer: Dealer;
  protected phase: Phase;
  private readonly rounds: ReduceRounds;
  private settle!: (outcome: RunOutcome) => void;
  private fail!: (err: Error) => void;
  /** Resolves when the run is over: finished, or stopped. Rejects when a hook failed. */
  readonly done: Promise<RunOutcome>;
  private mismatches = 0;

  constructor(private readonly o: StepDriverOptions) {
    super(o);
    this.done = new Promise((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    this.dealer = new Dealer(this.members, o.minWorkers, o.events);
    this.rounds = new ReduceRounds({
      observerId: o.observerId,
      algorithm: o.algorithm,
      maxGradNorm: o.maxGradNorm,
      firstGeneration: o.firstGeneration ?? 1,
      observe: (step, generation, members, signal, nodes, keys) =>
        o.observeReduce(step, generation, members, signal, nodes, keys),
      events: o.events,
      ...(o.observerPublicKey ? { observerPublicKey: o.observerPublicKey } : {}),
    });
    this.phase = o.replica.step >= o.totalSteps ? { kind: 'finished' } : this.trainPhase(o.replica.step);
  }

  get isFinished(): boolean {
    return this.phase.kind === 'finished';
  }

  private trainPhase(step: number): Phase {
    const planned = this.o.microBatches(step);
    this.byId = new Map(planned.map((m) => [m.id, m]));
    return { kind: 'train', ledger: new StepLedger(step, [...this.byId.keys()]) };
  }

  /** Stops the run before its end (SIGTERM): tells every worker and resolves `done`. */
  stop(reason: string): void {
    this.end({ steps: this.step, finished: this.step >= this.o.totalSteps, reason });
  }

  /** Ends the run with an error (an in-process worker failed): tells every worker, rejects `done`. */
  abort(err: Error): void {
    this.failRun(err);
  }

  protected syncReady(): void {
    // State moves only between commits: a replica that joins mid-reduce would miss the gradient.
    const p = this.phase;
    if (p.kind === 'reduce' || p.kind === 'commit') return;
    // One joining after a step's dealing began is dealt from the next step (docs/scale.md) but joins
    // this step's all-reduce, so its state stays current; dealt at once only if the step could not
    // finish without it (Dealer.enoughWorkers).
    const dealFrom = p.kind === 'finished' ? 0 : p.ledger.begun ? p.ledger.step + 1 : p.ledger.step;
    this.sync.syncReady(this.members, dealFrom);
  }

  protected advance(): void {
    const p = this.phase;
    if (p.kind === 'train' && p.ledger.isComplete) this.startReduce(p.ledger);
    else if (p.kind === 'eval' && p.ledger.isComplete) void this.endEval(p.ledger, p.afterStep);
    else if (p.kind === 'train') this.dealer.deal(p.ledger, this.byId, MicroBatchKind.MICRO_BATCH_KIND_TRAIN);
    else if (p.kind === 'eval')
      this.dealer.deal(p.ledger, this.evalById, MicroBatchKind.MICRO_BATCH_KIND_EVAL);
  }

  private startReduce(ledger: StepLedger): void {
    if (!this.dealer.enoughWorkers()) return;
    const synced = this.members.inPhase('synced');
    const links = synced.map((m) => m.link);
    const round = this.rounds.open(
      ledger.step,
      ledger.totals().tokens,
      links.map((l) => l.id),
    );
    this.accusations.opened(round, [...synced.map((m) => m.framePublicKey), this.o.observerPublicKey]);
    const phase: Phase = { kind: 'reduce', ledger, round, results: new Map() };
    this.phase = phase;
    this.rounds.start(
      round,
      links,
      {
        reduced: (own) => {
          if (this.phase !== phase) return;
          if (!Number.isFinite(own.norm)) {
            this.nonFiniteSum(ledger, own.norm);
            return;
          }
          phase.own = own;
          this.maybeCommit();
        },
        failed: (err) => {
          if (this.phase !== phase) return;
          this.abortReduce(`the coordinator's replica did not receive the reduced gradient: ${err.message}`);
          // Our own observer refused a member's bytes: no one else to trust.
          if (err instanceof AllReduceProtocolError && this.members.has(err.member))
            this.blame(err.member, round.generation, err.message);
          const now = this.phase as Phase;
          if (now.kind === 'train' && now.ledger === ledger) this.retryReduce(ledger);
        },
      },
      synced.map((m) => m.framePublicKey),
    );
  }

  protected abortReduce(reason: string): void {
    const p = this.phase;
    if (p.kind !== 'reduce') return;
    this.rounds.abort(p.round, reason, (id) => this.members.get(id)?.link);
    this.phase = { kind: 'train', ledger: p.ledger };
    // Replicas that became ready during the round may join the retry.
    this.syncReady();
  }

  /**
   * The reduced sum is not finite although every contribution passed the members' checks (finite
   * values that overflow when added). Never committed: retried, and the run stops after a few.
   */
  private nonFiniteSum(ledger: StepLedger, norm: number): void {
    const streak = this.offences.nonFiniteSum();
    this.abortReduce(`the reduced gradient is not finite (norm ${norm})`);
    if (streak.verdict === 'stop') {
      this.failRun(
        new Error(
          `step ${ledger.step}: the reduced gradient was not finite ${streak.count} times in a row; nothing was committed (check the learning rate and the data)`,
        ),
      );
      return;
    }
    this.retryReduce(ledger);
  }

  private retryReduce(ledger: StepLedger): void {
    this.rounds.retry(ledger.step, () => {
      if (this.phase.kind === 'train' && this.phase.ledger === ledger) this.advance();
    });
  }

  protected maybeCommit(): void {
    const p = this.phase;
    if (p.kind !== 'reduce' || !p.own || p.results.size < p.round.members.length) return;
    const factor = this.o.contributionNormFactor;
    if (factor !== undefined && this.refuseContributions(p.round, p.results, p.ledger, factor)) return;
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
        for (const id of verdict.workers) this.mismatch(p, id, 'gradient');
        this.abortReduce(`reduced-gradient checksum differs on ${verdict.workers.join(', ')}`);
        this.retryReduce(p.ledger);
        return;
      case 'diverged':
        // A diverged replica computed its micro-batches with wrong weights: repair it, redo its share.
        for (const id of verdict.workers) this.mismatch(p, id, 'state');
        this.abortReduce(`replica state differs from the coordinator's on ${verdict.workers.join(', ')}`);
        for (const id of verdict.workers) {
          this.sync.resend(id, this.members.get(id)?.link);
          this.work.requeue(p.ledger, id);
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
    }
  }

  private mismatch(p: Extract<Phase, { kind: 'reduce' }>, id: WorkerId, what: 'gradient' | 'state'): void {
    this.mismatches++;
    const { step, generation } = p.round;
    this.events.warn(
      'replica_mismatch',
      `worker ${id}'s ${what === 'gradient' ? 'reduced-gradient' : 'replica state'} checksum differs from the coordinator's (step ${step} generation ${generation})`,
      { worker: id, step, generation, what },
    );
  }

  private async commit(p: Extract<Phase, { kind: 'reduce' }>): Promise<void> {
    this.phase = { kind: 'commit' };
    this.rounds.committed(p.round);
    this.offences.committed();
    this.accusations.committed(p.ledger.step);
    this.reportOutliers(p.ledger);
    const step = p.ledger.step;
    const lr = this.o.learningRate(this.o.replica.step);
    const { lossSum, tokens, byWorker } = p.ledger.totals();
    p.ledger.audit();
    this.o.replica.apply(p.own!.grad, lr);
    const commit = stepCommitMessage(step, p.round.generation, lr, this.o.maxGradNorm);
    for (const id of p.round.members) this.members.get(id)?.link.send(commit);
    try {
      await this.o.onCommit({
        step,
        generation: p.round.generation,
        loss: lossSum / tokens,
        tokens,
        gradNorm: p.own!.norm,
        learningRate: lr,
        microBatchesByWorker: byWorker,
        ledger: p.ledger,
        replicaMismatches: this.mismatches,
        microBatchesRequeued: this.work.requeued,
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
    if (this.phase.kind === 'reduce') this.phase.round.cancel.abort();
    this.phase = { kind: 'finished' };
    const bye = finishedMessage(outcome.steps, outcome.reason);
    for (const m of this.members.all()) m.link.send(bye);
    this.settle(outcome);
  }

  private failRun(err: Error): void {
    if (this.phase.kind === 'reduce') this.phase.round.cancel.abort();
    this.phase = { kind: 'finished' };
    const bye = finishedMessage(this.step, `run failed: ${err.message}`);
    for (const m of this.members.all()) m.link.send(bye);
    this.fail(err);
  }

  describe(): string {
    const p = this.phase;
    const n = this.members.inPhase('synced').length;
    switch (p.kind) {
      case 'train':
        return `step ${p.ledger.step}: ${p.ledger.pending} micro-batches pending, ${n} workers`;
      case 'reduce':
        return `step ${p.ledger.step}: all-reduce generation ${p.round.generation} (${p.results.size}/${p.round.members.length})`;
      case 'eval':
        return `evaluating after step ${p.afterStep}: ${p.ledger.pending} pending`;
      default:
        return p.kind;
    }
  }
}

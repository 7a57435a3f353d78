// What a run records as it goes, the same for `finetune` and `coordinator`: at each commit the
// trainer-state history, a metrics.jsonl line and a `step_committed` event (tokens/s, ETA, step
// time, who computed what); at each evaluation the same for the eval loss; after each step the
// checkpoint when one is due. The step driver awaits it (the StepJournal it implements); the
// Prometheus gauges follow its events (src/metrics/coordinator-metrics.ts).
import type { DataPlan } from '../data/data-plan.ts';
import { formatDuration } from '../events/duration.ts';
import type { Events } from '../events/events.ts';
import type { CheckpointKeeper } from '../train/checkpoint-keeper.ts';
import type { MetricsLog } from '../train/metrics-log.ts';
import type { CommitInfo, StepJournal } from './step-journal.ts';

export interface RunJournalOptions {
  readonly plan: DataPlan;
  readonly keeper: CheckpointKeeper;
  readonly metricsLog: MetricsLog;
  readonly events: Events;
  /** The step the run (re)started at: tokens/s and ETA count from there. */
  readonly startStep: number;
  readonly now?: () => number;
}

export class RunJournal implements StepJournal {
  private readonly now: () => number;
  private readonly started: number;
  private lastCommit: number;
  private tokensSeen = 0;
  /**
   * The first commit of this process: throughput and ETA are measured from it, so the wait for
   * workers and their model load (minutes for MPT-7B) does not count as training time.
   */
  private pace: { readonly t: number; readonly done: number; readonly tokens: number } | undefined;
  /** Loss of the first and the latest step this process committed. */
  firstLoss = Number.NaN;
  lastLoss = Number.NaN;

  constructor(private readonly o: RunJournalOptions) {
    this.now = o.now ?? Date.now;
    this.started = this.now();
    this.lastCommit = this.started;
  }

  /** Seconds since this process started the run. */
  get seconds(): number {
    return (this.now() - this.started) / 1000;
  }

  readonly onCommit = async (c: CommitInfo): Promise<void> => {
    const { plan, keeper } = this.o;
    const done = c.step + 1;
    const t = this.now();
    const stepSeconds = (t - this.lastCommit) / 1000;
    this.lastCommit = t;
    this.tokensSeen += plan.microBatchesForStep(c.step).reduce((n, m) => n + m.rows * m.seqLen, 0);
    const elapsed = (t - this.started) / 1000;
    const first = this.pace === undefined;
    this.pace ??= { t, done, tokens: this.tokensSeen };
    const paceSeconds = (t - this.pace.t) / 1000;
    const paceSteps = done - this.pace.done;
    // Until a second commit there is no pace yet but the first step's, waiting included.
    const tokensPerSecond =
      paceSteps > 0 && paceSeconds > 0
        ? (this.tokensSeen - this.pace.tokens) / paceSeconds
        : elapsed > 0
          ? this.tokensSeen / elapsed
          : 0;
    const secondsPerStep = paceSteps > 0 ? paceSeconds / paceSteps : elapsed / (done - this.o.startStep);
    const eta = secondsPerStep * (plan.totalSteps - done);
    if (Number.isNaN(this.firstLoss)) this.firstLoss = c.loss;
    this.lastLoss = c.loss;
    const split = [...c.microBatchesByWorker].map(([w, n]) => `${w}:${n}`).join(' ');
    const ledger = c.ledger.summary();
    const entry = {
      step: done,
      loss: c.loss,
      learning_rate: c.learningRate,
      grad_norm: c.gradNorm,
      epoch: done / plan.stepsPerEpoch,
      supervised_tokens: c.tokens,
    };
    keeper.history.push(entry);
    const requeued = ledger.requeued.map((r) => `${r.id}@${r.worker}`).join(' ');
    await this.o.metricsLog.append({
      ...entry,
      generation: c.generation,
      step_seconds: stepSeconds,
      micro_batches_by_worker: split,
      tokens_per_second: tokensPerSecond,
      ledger_planned: ledger.planned,
      ledger_counted: ledger.counted,
      ledger_assigned: ledger.assigned,
      ledger_requeued: requeued,
      ledger_ignored: ledger.ignored.length,
      replica_mismatches: c.replicaMismatches,
      microbatches_requeued: c.microBatchesRequeued,
    });
    // The ledger passed its audit (every planned micro-batch counted once): worth a line only when
    // something was requeued or ignored on the way.
    const eventful = ledger.requeued.length > 0 || ledger.ignored.length > 0;
    (eventful ? this.o.events.info : this.o.events.debug)(
      'ledger_audit',
      `ledger of step ${done}: ${ledger.counted} of ${ledger.planned} micro-batches counted once (audit ok), ` +
        `${ledger.assigned} assignments, requeued [${requeued}], ` +
        `ignored [${ledger.ignored.map((r) => `${r.id}@${r.worker}`).join(' ')}]`,
      {
        step: done,
        planned: ledger.planned,
        counted: ledger.counted,
        assigned: ledger.assigned,
        requeued: ledger.requeued.length,
        ignored: ledger.ignored.length,
      },
    );
    this.o.events.info(
      'step_committed',
      `step ${done}/${plan.totalSteps}  loss ${c.loss.toFixed(4)}  lr ${c.learningRate.toExponential(2)}  ` +
        `grad_norm ${c.gradNorm.toFixed(3)}  ${tokensPerSecond.toFixed(0)} tok/s  ` +
        `elapsed ${formatDuration(elapsed)}  eta ${formatDuration(eta)}  micro-batches ${split}`,
      {
        step: done,
        total_steps: plan.totalSteps,
        generation: c.generation,
        loss: c.loss,
        learning_rate: c.learningRate,
        grad_norm: c.gradNorm,
        tokens_per_second: tokensPerSecond,
        eta_seconds: Number.isFinite(eta) ? eta : null,
        // The first commit here has no committed step before it to measure from.
        step_seconds: first ? null : stepSeconds,
        micro_batches: Object.fromEntries(c.microBatchesByWorker),
      },
    );
  };

  readonly onEval = async (step: number, loss: number, tokens: number): Promise<void> => {
    const done = step + 1;
    this.o.keeper.recordEval(done, loss, tokens);
    await this.o.metricsLog.append({ step: done, eval_loss: loss, eval_tokens: tokens });
    this.o.events.info('eval_done', `step ${done}: eval loss ${loss.toFixed(4)} over ${tokens} tokens`, {
      step: done,
      eval_loss: loss,
      eval_tokens: tokens,
    });
  };

  readonly afterStep = async (done: number): Promise<void> => {
    const saved = await this.o.keeper.afterStep(done);
    if (!saved) return;
    this.o.events.info(
      'checkpoint_saved',
      `saved ${saved.path}${saved.pruned.length > 0 ? ` (removed ${saved.pruned.length} older)` : ''}`,
      { step: done, path: saved.path, pruned: saved.pruned },
    );
  };
}

// The coordinator's metrics: the run as it commits (step, loss, learning rate, grad norm, throughput,
// ETA, step wall time), its checkpoints, its workers and micro-batch bookkeeping, replica checksum
// mismatches, refused results and gradient outliers, and the all-reduce rounds it observes. They
// follow the coordinator's own typed events (`record`, tapped as the status page is:
// src/events/tap.ts), so a metric and its log line come from one call. Workers publish their own
// work (worker-metrics.ts). The Grafana dashboard and the alert rules in helm/lora-mpt/files query
// these names: rename one here and there together.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { TappedEvent, TappedEventOf } from '../events/tap.ts';
import { type AllReduceMetrics, allReduceMetrics } from './allreduce-metrics.ts';
import { lazyGauge } from './lazy-gauge.ts';
import { processRegistry } from './registry.ts';
import { createSecurityMetrics, type SecurityMetrics } from './security-metrics.ts';

export type WorkerState = 'loading' | 'ready' | 'synced';

/** Steps whose wall times make lora_mpt_recent_step_seconds (the stalled-run alert's yardstick). */
export const RECENT_STEPS = 10;

export interface CoordinatorMetrics {
  readonly registry: Registry;
  readonly allReduce: AllReduceMetrics;
  /** Refused credentials, results and frames, gradient outliers (the same registry). */
  readonly security: SecurityMetrics;
  /** One of the coordinator's events (src/events/tap.ts): the metrics that follow it. */
  record(e: TappedEvent): void;
  /** The run (re)starts at `step` of `totalSteps`; the checkpoint age counts from now. */
  started(o: {
    readonly step: number;
    readonly totalSteps: number;
    readonly minWorkers: number;
    readonly saveSteps: number;
  }): void;
  /** Read at each scrape: how many workers are in `state` now. */
  countWorkers(count: (state: WorkerState) => number): void;
}

export function createCoordinatorMetrics(runId: string, now: () => number = Date.now): CoordinatorMetrics {
  const registry = processRegistry('coordinator', { run_id: runId });
  const registers = [registry];
  // Values that exist once measured; the run's shape is known from the start.
  const gauge = (name: string, help: string) => lazyGauge(registry, name, help);
  const known = (name: string, help: string) => new Gauge({ name, help, registers });
  const step = known('lora_mpt_step', 'Optimizer steps committed');
  const totalSteps = known('lora_mpt_total_steps', 'Optimizer steps the run has in all');
  const loss = gauge(
    'lora_mpt_loss',
    'Training loss of the last committed step (mean over its supervised tokens)',
  );
  const evalLoss = gauge('lora_mpt_eval_loss', 'Mean loss on the validation set at the last evaluation');
  const learningRate = gauge('lora_mpt_learning_rate', 'Learning rate of the last committed step');
  const gradNorm = gauge(
    'lora_mpt_grad_norm',
    'Global gradient norm of the last committed step, before clipping',
  );
  const tokensPerSecond = gauge(
    'lora_mpt_tokens_per_second',
    'Input tokens per second of all workers together, from the first step this coordinator committed on',
  );
  const eta = gauge(
    'lora_mpt_eta_seconds',
    'Estimated seconds to the last step, at the pace since this coordinator started',
  );
  const lastCommit = gauge('lora_mpt_last_commit_timestamp_seconds', 'Unix time of the last committed step');
  const recent = gauge(
    'lora_mpt_recent_step_seconds',
    `Mean wall time of the last ${RECENT_STEPS} committed steps (evaluations and checkpoints between them included)`,
  );
  const minWorkers = known('lora_mpt_min_workers', 'Synced workers a step needs (--min_workers)');
  const saveSteps = known('lora_mpt_save_steps', 'Steps between checkpoints (--save_steps)');
  const stepDuration = new Histogram({
    name: 'lora_mpt_step_duration_seconds',
    help: 'Wall time from one committed step to the next',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers,
  });
  let lastCheckpoint = now();
  new Gauge({
    name: 'lora_mpt_checkpoint_age_seconds',
    help: 'Seconds since this coordinator last wrote a checkpoint (before its first one: since it started the run)',
    registers,
    collect() {
      this.set((now() - lastCheckpoint) / 1000);
    },
  });
  let countWorkers: ((state: WorkerState) => number) | undefined;
  new Gauge({
    name: 'lora_mpt_workers',
    help: 'Workers by state: loading (the base model), ready (waiting for the adapter state), synced (taking micro-batches)',
    labelNames: ['state'],
    registers,
    collect() {
      for (const state of ['loading', 'ready', 'synced'] as const)
        this.set({ state }, countWorkers?.(state) ?? 0);
    },
  });
  const lost = new Counter({
    name: 'lora_mpt_workers_lost_total',
    help: 'Workers lost mid-run (stream ended, heartbeat or micro-batch deadline missed); their work was requeued',
    registers,
  });
  // Counted at every micro-batch dealt and reported: plain numbers here, handed to prom-client at
  // each scrape (an inc with labels builds a label hash and a result object per call).
  const microBatchCounts = { assigned: 0, completed: 0, requeued: 0 };
  new Counter({
    name: 'lora_mpt_microbatches_total',
    help: 'Micro-batches dealt to workers (assigned), counted once in their step (completed), or dealt again (requeued)',
    labelNames: ['event'],
    registers,
    collect() {
      this.reset();
      for (const [event, n] of Object.entries(microBatchCounts)) this.inc({ event }, n);
    },
  });
  const mismatches = new Counter({
    name: 'lora_mpt_replica_mismatches_total',
    help: "Workers whose reduced-gradient or replica checksum differed from the coordinator's",
    registers,
  });
  const durations: number[] = [];
  /** A step committed: `stepSeconds` is null for the first commit of this process. */
  const committed = (c: TappedEventOf<'step_committed'>['fields']) => {
    step.set(c.step);
    loss.set(c.loss);
    learningRate.set(c.learning_rate);
    gradNorm.set(c.grad_norm);
    tokensPerSecond.set(c.tokens_per_second);
    if (c.eta_seconds !== null && Number.isFinite(c.eta_seconds)) eta.set(c.eta_seconds);
    lastCommit.set(now() / 1000);
    if (c.step_seconds === null || !Number.isFinite(c.step_seconds)) return;
    stepDuration.observe(c.step_seconds);
    durations.push(c.step_seconds);
    if (durations.length > RECENT_STEPS) durations.shift();
    recent.set(durations.reduce((a, b) => a + b, 0) / durations.length);
  };
  const security = createSecurityMetrics(registry);
  return {
    registry,
    allReduce: allReduceMetrics(registry),
    security,
    record(e) {
      switch (e.event) {
        case 'step_committed':
          return committed(e.fields);
        case 'eval_done':
          return evalLoss.set(e.fields.eval_loss);
        case 'checkpoint_saved':
          lastCheckpoint = now();
          return;
        case 'microbatches_dealt':
          microBatchCounts.assigned += e.fields.micro_batches.length;
          return;
        case 'microbatch_completed':
          microBatchCounts.completed++;
          return;
        case 'microbatches_requeued':
        case 'microbatches_revoked':
          microBatchCounts.requeued += e.fields.micro_batches.length;
          return;
        case 'replica_mismatch':
          return mismatches.inc();
        case 'worker_lost':
          return lost.inc();
        case 'result_refused':
          return security.refusedResults.inc({ outcome: e.fields.dropped ? 'dropped' : 'reset' });
        case 'worker_quarantined':
          return security.quarantines.inc({ reason: e.fields.reason });
        case 'contribution_refused':
          return security.refusedContributions.inc({ kind: e.fields.kind });
        case 'gradient_outlier':
          return security.gradientOutliers.inc({ worker: e.fields.worker });
      }
    },
    started(o) {
      step.set(o.step);
      totalSteps.set(o.totalSteps);
      minWorkers.set(o.minWorkers);
      saveSteps.set(o.saveSteps);
      lastCheckpoint = now();
    },
    countWorkers(count) {
      countWorkers = count;
    },
  };
}

// The Prometheus metrics every lora-mpt process exposes (DESIGN.md §7). One registry per process
// (never prom-client's global one), so tests and in-process workers do not collide. The Grafana
// dashboard queries exactly these names: rename one here and there together.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export type Role = 'coordinator' | 'worker' | 'finetune';
export type StepPhase = 'compute' | 'allreduce' | 'commit' | 'idle';
export type MicroBatchEvent = 'assigned' | 'completed' | 'requeued';

export interface TrainingMetrics {
  readonly registry: Registry;
  readonly loss: Gauge;
  readonly evalLoss: Gauge;
  readonly learningRate: Gauge;
  readonly gradNorm: Gauge;
  readonly step: Gauge;
  readonly tokens: Counter;
  readonly stepDuration: Histogram;
  readonly stepPhase: Counter<'phase'>;
  readonly tokensPerSecond: Gauge;
  readonly mfu: Gauge;
  readonly workers: Gauge<'state'>;
  readonly microBatches: Counter<'event'>;
  readonly allReduceBytes: Counter;
  readonly allReduceDuration: Histogram<'algorithm'>;
  readonly checkpointAge: Gauge;
  readonly replicaMismatches: Counter;
  readonly backendMemory: Gauge<'kind'>;
  /** Call when a checkpoint is written; the age gauge counts from here. */
  markCheckpoint(at?: number): void;
}

export function createTrainingMetrics(
  role: Role,
  labels: Readonly<Record<string, string>> = {},
): TrainingMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ role, ...labels });
  collectDefaultMetrics({ register: registry, prefix: 'lora_mpt_' });
  const registers = [registry];
  let lastCheckpoint: number | undefined;
  const stepBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
  return {
    registry,
    loss: new Gauge({ name: 'lora_mpt_loss', help: 'Training loss of the last committed step', registers }),
    evalLoss: new Gauge({ name: 'lora_mpt_eval_loss', help: 'Mean loss on the validation set', registers }),
    learningRate: new Gauge({
      name: 'lora_mpt_learning_rate',
      help: 'Learning rate of the last step',
      registers,
    }),
    gradNorm: new Gauge({
      name: 'lora_mpt_grad_norm',
      help: 'Global gradient norm before clipping',
      registers,
    }),
    step: new Gauge({ name: 'lora_mpt_step', help: 'Last committed optimizer step', registers }),
    tokens: new Counter({
      name: 'lora_mpt_tokens_total',
      help: 'Input tokens processed in training',
      registers,
    }),
    stepDuration: new Histogram({
      name: 'lora_mpt_step_duration_seconds',
      help: 'Wall time of one optimizer step',
      buckets: stepBuckets,
      registers,
    }),
    stepPhase: new Counter({
      name: 'lora_mpt_step_phase_seconds_total',
      help: 'Time spent per step phase (compute, allreduce, commit, idle)',
      labelNames: ['phase'],
      registers,
    }),
    tokensPerSecond: new Gauge({
      name: 'lora_mpt_tokens_per_second',
      help: 'Training throughput',
      registers,
    }),
    mfu: new Gauge({
      name: 'lora_mpt_mfu',
      help: 'Model FLOPs utilisation (0..1) of the last step',
      registers,
    }),
    workers: new Gauge({
      name: 'lora_mpt_workers',
      help: 'Workers by state',
      labelNames: ['state'],
      registers,
    }),
    microBatches: new Counter({
      name: 'lora_mpt_microbatches_total',
      help: 'Micro-batches by event (assigned, completed, requeued)',
      labelNames: ['event'],
      registers,
    }),
    allReduceBytes: new Counter({
      name: 'lora_mpt_allreduce_bytes_total',
      help: 'Bytes this process sent in gradient all-reduces',
      registers,
    }),
    allReduceDuration: new Histogram({
      name: 'lora_mpt_allreduce_duration_seconds',
      help: 'Wall time of one gradient all-reduce',
      labelNames: ['algorithm'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    checkpointAge: new Gauge({
      name: 'lora_mpt_checkpoint_age_seconds',
      help: 'Seconds since the last checkpoint was written (absent before the first)',
      registers,
      collect() {
        if (lastCheckpoint !== undefined) this.set((Date.now() - lastCheckpoint) / 1000);
      },
    }),
    replicaMismatches: new Counter({
      name: 'lora_mpt_replica_mismatches_total',
      help: 'Reduced-gradient or weight checksum mismatches detected between replicas',
      registers,
    }),
    backendMemory: new Gauge({
      name: 'lora_mpt_backend_memory_bytes',
      help: 'Compute backend memory (kind=tensors: live tensor bytes; kind=heap: backend heap)',
      labelNames: ['kind'],
      registers,
    }),
    markCheckpoint(at = Date.now()) {
      lastCheckpoint = at;
    },
  };
}

// A worker's own metrics, measured where the work happens: micro-batches computed and their compute
// seconds, input tokens, model FLOPs and MFU against the device's peak, where its wall time goes
// (step phases), its all-reduce rounds, and its backend's memory. The coordinator publishes the
// run's (coordinator-metrics.ts).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type AllReduceMetrics, allReduceMetrics } from './allreduce-metrics.ts';
import { lazyGauge } from './lazy-gauge.ts';
import { PhaseClock, STEP_PHASES, type StepPhase } from './phase-clock.ts';
import { processRegistry, setProcessLabels } from './registry.ts';

export type { StepPhase } from './phase-clock.ts';
export type MicroBatchKind = 'train' | 'eval';

export interface ComputedMicroBatch {
  readonly kind: MicroBatchKind;
  readonly seconds: number;
  /** rows × padded sequence length. */
  readonly inputTokens: number;
  readonly flops: number;
}

/** The compute backend's memory now (src/model/backend-memory.ts reads it from TensorFlow.js). */
export interface BackendMemory {
  readonly tensors: number;
  /** Bytes of live tensors as the backend reports them. */
  readonly tensorBytes: number;
  /** The wasm backend's heap (WebAssembly memory), where there is one. */
  readonly wasmHeapBytes?: number;
}

export interface WorkerMetrics {
  readonly registry: Registry;
  readonly allReduce: AllReduceMetrics;
  /** Labels every series with the run this worker computes for. */
  joinedRun(runId: string): void;
  /** The peak FLOP/s MFU divides by, and where it came from (flag, table, measured). */
  peak(flopsPerSecond: number, source: string): void;
  computed(mb: ComputedMicroBatch): void;
  /** From now on this worker is in `phase` (lora_mpt_step_phase_seconds_total). */
  enterPhase(phase: StepPhase): void;
  /** A step committed: lora_mpt_mfu_ratio covers the wall time since the previous commit. */
  stepCommitted(): void;
}

export function createWorkerMetrics(
  worker: string,
  memory: () => BackendMemory,
  now: () => number = () => performance.now(),
): WorkerMetrics {
  const registry = processRegistry('worker', { worker });
  const registers = [registry];
  const compute = new Histogram({
    name: 'lora_mpt_microbatch_seconds',
    help: 'Compute wall time of one micro-batch on this worker (kind=train: forward + backward; eval: forward); _count is micro-batches computed',
    labelNames: ['kind'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const tokens = new Counter({
    name: 'lora_mpt_tokens_total',
    help: 'Input tokens (rows × padded length) of the training micro-batches this worker computed',
    registers,
  });
  const flops = new Counter({
    name: 'lora_mpt_model_flops_total',
    help: 'Model FLOPs of the micro-batches this worker computed (src/model/flops.ts)',
    registers,
  });
  // Booked at every phase change and at each scrape, so a long compute shows while it runs.
  let clock: PhaseClock | undefined;
  const phases = new Counter({
    name: 'lora_mpt_step_phase_seconds_total',
    help: 'Wall time of this worker by phase: compute, wait (for the others to finish the step), allreduce, commit (verdict and update), idle',
    labelNames: ['phase'],
    registers,
    collect() {
      clock?.flush();
    },
  });
  for (const phase of STEP_PHASES) phases.inc({ phase }, 0);
  clock = new PhaseClock((phase, seconds) => phases.inc({ phase }, seconds), now);
  const peak = new Gauge({
    name: 'lora_mpt_peak_flops_per_second',
    help: "Peak FLOP/s of this worker's device that MFU is measured against; source: flag (--peak_tflops), table (GPU datasheet), measured (plain matmul on this backend)",
    labelNames: ['source'],
    registers,
  });
  const mfu = lazyGauge(
    registry,
    'lora_mpt_mfu_ratio',
    'Model FLOPs utilisation of this worker over its last committed step: model FLOPs / (wall seconds × peak FLOP/s)',
  );
  new Gauge({
    name: 'lora_mpt_backend_memory_bytes',
    help: "Compute backend memory: kind=tensors (live tensor bytes, tf.memory()), kind=wasm_heap (the wasm backend's heap); the native backend's own allocations show in lora_mpt_process_resident_memory_bytes",
    labelNames: ['kind'],
    registers,
    collect() {
      const m = memory();
      this.set({ kind: 'tensors' }, m.tensorBytes);
      if (m.wasmHeapBytes !== undefined) this.set({ kind: 'wasm_heap' }, m.wasmHeapBytes);
    },
  });
  new Gauge({
    name: 'lora_mpt_backend_tensors',
    help: 'Live tensors on the compute backend (tf.memory().numTensors): growth across steps is a leak',
    registers,
    collect() {
      this.set(memory().tensors);
    },
  });
  let peakFlops = 0;
  let windowFlops = 0;
  let windowStart: number | undefined;
  return {
    registry,
    allReduce: allReduceMetrics(registry),
    joinedRun: (runId) => setProcessLabels(registry, 'worker', { worker, run_id: runId }),
    peak(value, source) {
      peakFlops = value;
      peak.reset();
      peak.set({ source }, value);
    },
    computed(mb) {
      compute.observe({ kind: mb.kind }, mb.seconds);
      if (mb.kind === 'train') tokens.inc(mb.inputTokens);
      flops.inc(mb.flops);
      windowFlops += mb.flops;
      windowStart ??= now() - mb.seconds * 1000;
    },
    enterPhase: (phase) => clock?.enter(phase),
    stepCommitted() {
      const t = now();
      if (windowStart !== undefined && t > windowStart && peakFlops > 0) {
        mfu.set(windowFlops / (((t - windowStart) / 1000) * peakFlops));
      }
      windowFlops = 0;
      windowStart = t;
    },
  };
}

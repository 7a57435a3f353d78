// `lora-mpt gpu-check`: on a GPU node, proves the GPU path before a run pays for it — the binding
// and each CUDA library TensorFlow opened (or why not), the device, float32 precision against a
// float64 reference (TF32 shows as ~1e-3), the matmul rate against the datasheet peak with
// nvidia-smi's utilisation and memory sampled meanwhile, and real training steps of a random model
// through the worker's own compute path (step time, tokens/s, MFU). Exits 1 on any CPU fallback.
// With --backend tensorflow (or wasm) it measures the same on the CPU and says it is no GPU check.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LORA_DEFAULTS } from '../checkpoint/lora-spec.ts';
import type { MicroBatch } from '../data/micro-batch.ts';
import { Rng } from '../data/rng.ts';
import { readCheckpointConfig } from '../families/checkpoint.ts';
import { familyOf } from '../families/registry.ts';
import {
  type BackendChoice,
  type BackendOptions,
  GpuRequiredError,
  gpuDevice,
  gpuProbeReport,
  initBackend,
} from '../model/backend.ts';
import { trainStepFlops } from '../model/flops.ts';
import { describeProbe } from '../model/gpu-probe.ts';
import { gpuPeakFor } from '../model/peak-flops.ts';
import { loadModelCompute } from '../worker/model-compute.ts';
import { backendOptions } from './backend-options.ts';
import { type Command, flagCommand } from './command.ts';
import { BACKEND_NAMES } from './compute-flags.ts';
import { type FlagSpecs, type ParsedFlags, UsageError } from './flags.ts';
import { eventsFromFlags, reportLogFlags } from './log-flags.ts';

const flags = {
  backend: {
    kind: 'string',
    default: 'tensorflow-gpu',
    help: 'tensorflow-gpu (the check: a GPU or exit 1), or tensorflow / wasm to take the same measurements on the CPU for comparison.',
  },
  matmul_size: {
    kind: 'int',
    default: 8192,
    min: 64,
    help: 'n of the n×n×n float32 matmul whose rate is measured.',
  },
  model_type: {
    kind: 'string',
    default: 'mpt',
    help: 'Model family of the random model the training steps run.',
  },
  d_model: { kind: 'int', default: 2048, min: 16, help: 'Width of the random model (MPT-7B: 4096).' },
  n_layers: { kind: 'int', default: 4, min: 1, help: 'Blocks of the random model.' },
  n_heads: { kind: 'int', default: 16, min: 1, help: 'Attention heads of the random model.' },
  micro_batch_size: { kind: 'int', default: 4, min: 1, help: 'Rows of each training micro-batch.' },
  cutoff_len: { kind: 'int', default: 512, min: 8, help: 'Tokens per row (all supervised).' },
  steps: { kind: 'int', default: 5, min: 1, help: 'Timed training steps (after one warm-up).' },
  ...reportLogFlags,
} as const satisfies FlagSpecs;

/** Where the report's lines go: stdout as text, or events with --log_format json (set by runGpuCheck). */
let say = (line: string): void => console.log(line);

/** nvidia-smi sampling utilisation and memory every 200 ms while `work` runs; null without nvidia-smi. */
async function sampled<T>(
  work: () => Promise<T>,
): Promise<{ result: T; util: number | null; memMiB: number | null }> {
  let util: number | null = null;
  let mem: number | null = null;
  let smi: ChildProcess | null = null;
  try {
    smi = spawn(
      'nvidia-smi',
      ['--query-gpu=utilization.gpu,memory.used', '--format=csv,noheader,nounits', '-lms', '200'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    smi.on('error', () => {});
    smi.stdout?.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        const [u, m] = line.split(',').map((x) => Number(x.trim()));
        if (Number.isFinite(u) && Number.isFinite(m)) {
          util = Math.max(util ?? 0, u as number);
          mem = Math.max(mem ?? 0, m as number);
        }
      }
    });
  } catch {
    smi = null;
  }
  try {
    return { result: await work(), util, memMiB: mem };
  } finally {
    // Only a child that started: kill() of a spawn that failed (no nvidia-smi) must not signal anything.
    if (smi?.pid !== undefined && smi.exitCode === null) smi.kill();
  }
}

/** Max |device − float64| / max |float64| of a seeded 1024² matmul: ~1e-7 in FP32, ~1e-3 in TF32. */
function precision(): number {
  const n = 1024;
  const rng = new Rng(12345);
  const rnd = () => (rng.nextU32() / 2 ** 32) * 2 - 1;
  const a = Float32Array.from({ length: n * n }, rnd);
  const b = Float32Array.from({ length: n * n }, rnd);
  const got = tf.tidy(() => tf.matMul(tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n])).dataSync());
  let err = 0;
  let scale = 0;
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    row.fill(0);
    for (let k = 0; k < n; k++) {
      const x = a[i * n + k] as number;
      for (let j = 0; j < n; j++) row[j] = (row[j] as number) + x * (b[k * n + j] as number);
    }
    for (let j = 0; j < n; j++) {
      err = Math.max(err, Math.abs((got[i * n + j] as number) - (row[j] as number)));
      scale = Math.max(scale, Math.abs(row[j] as number));
    }
  }
  return err / scale;
}

/** TFLOP/s of an n³ float32 matmul, the median of 5 after a warm-up, the read-back included. */
function matmulTflops(n: number): number {
  const a = tf.randomNormal([n, n]);
  const w = tf.randomNormal([n, n]);
  const ms: number[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      const c = tf.matMul(a, w);
      c.dataSync();
      c.dispose();
      if (i > 0) ms.push(performance.now() - t0);
    }
  } finally {
    tf.dispose([a, w]);
  }
  ms.sort((x, y) => x - y);
  return (2 * n ** 3) / ((ms[2] as number) * 1e9);
}

async function trainingSteps(f: ParsedFlags<typeof flags>, backend: BackendChoice, options: BackendOptions) {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-gpu-check-'));
  try {
    const vocab = 50_432;
    await familyOf(f.model_type, '--model_type').writeRandomCheckpoint(dir, {
      dModel: f.d_model,
      nHeads: f.n_heads,
      nLayers: f.n_layers,
      vocabSize: vocab,
      maxSeqLen: Math.max(2048, f.cutoff_len),
      seed: 7,
    });
    const settings = {
      // LoRA r 8 on every Linear of a block, by the family's own names.
      lora: {
        ...LORA_DEFAULTS,
        r: 8,
        loraAlpha: 16,
        loraDropout: 0.05,
        targetModules: (await readCheckpointConfig(dir)).config.arch.linears.map((l) => l.name),
      },
      seed: 1,
      gradientCheckpointing: false,
      load8bit: false,
    };
    const budget = { microBatchSize: f.micro_batch_size, cutoffLen: f.cutoff_len, memoryGib: 0 };
    const loaded = await loadModelCompute(dir, backend, settings, budget, options);
    const rows = f.micro_batch_size;
    const t = f.cutoff_len;
    const ids = Int32Array.from({ length: rows * t }, (_, i) => (i * 7919) % vocab);
    const mb = (id: number): MicroBatch => ({
      id,
      step: id,
      rows,
      seqLen: t,
      inputIds: ids,
      labels: ids,
      attentionMask: new Int32Array(rows * t).fill(1),
    });
    loaded.compute.setAdapter(new Float32Array(loaded.layout.size).fill(0.001));
    await loaded.compute.train(mb(0)); // warm-up: kernels chosen, weights placed
    const ms: number[] = [];
    for (let i = 1; i <= f.steps; i++) {
      const t0 = performance.now();
      const r = await loaded.compute.train(mb(i));
      ms.push(performance.now() - t0);
      if (!Number.isFinite(r.lossSum)) throw new Error(`training step ${i}: loss ${r.lossSum}`);
    }
    ms.sort((x, y) => x - y);
    const median = ms[Math.floor(ms.length / 2)] as number;
    const flops = trainStepFlops(loaded.flops, { rows, seqLen: t, logitRows: rows * (t - 1) });
    return { median, tokensPerS: (rows * t) / (median / 1000), tflops: flops / (median * 1e9) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runGpuCheck(
  f: ParsedFlags<typeof flags>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const events = eventsFromFlags(f, { label: '' });
  say = (line) => events.info('gpu_check', line);
  if (
    !(BACKEND_NAMES as readonly string[]).includes(f.backend) ||
    f.backend === 'auto' ||
    f.backend === 'cpu' ||
    f.backend === 'synthetic'
  ) {
    throw new UsageError(`--backend ${f.backend}: expected tensorflow-gpu, tensorflow or wasm`);
  }
  const backend = f.backend as BackendChoice;
  const gpu = backend === 'tensorflow-gpu';
  say(`== backend (${gpu ? 'a GPU is required' : 'NOT a GPU check: the same measurements on the CPU'})`);
  // One options object for both starts: the backend writes TF_NUM_INTRAOP_THREADS into the
  // environment, and options read again from it would ask for a thread count TF already has.
  const options = backendOptions(0, env);
  let active: Awaited<ReturnType<typeof initBackend>>;
  try {
    active = await initBackend(backend, options);
  } catch (err) {
    if (err instanceof GpuRequiredError) {
      say(err.message);
      say('gpu-check: FAILED: no GPU computes here');
      return 1;
    }
    throw err;
  }
  say(active.summary);
  const report = gpuProbeReport();
  if (report !== null) for (const line of describeProbe(report)) say(line);
  const device = gpuDevice();
  const tf32 = env.LORA_MPT_TF32 === '1';
  say(`device: ${device ?? 'CPU'}; TF32 ${tf32 ? 'on (LORA_MPT_TF32=1)' : 'off'}`);

  say('== float32 precision: a 1024² matmul against float64 on the host');
  const rel = precision();
  const kind = rel < 1e-5 ? 'FP32' : rel < 1e-2 ? 'TF32-like' : 'WRONG';
  say(`max relative error ${rel.toExponential(2)} (${kind}; FP32 ~1e-7, TF32 ~1e-3)`);
  let failed = kind === 'WRONG' || (!tf32 && kind !== 'FP32');
  if (failed) say(`gpu-check: FAILED: float32 matmuls are not ${tf32 ? 'within TF32' : 'full FP32'} here`);

  say(`== matmul rate: ${f.matmul_size}³ float32`);
  const mm = await sampled(async () => matmulTflops(f.matmul_size));
  const peak = device === null ? undefined : gpuPeakFor(device, tf32);
  const ofPeak = peak
    ? `, ${((100 * mm.result) / peak.tflops).toFixed(0)}% of the ${peak.tflops} TFLOP/s ${peak.precision} peak`
    : '';
  say(`${mm.result.toFixed(2)} TFLOP/s${ofPeak}`);
  if (mm.util !== null)
    say(`nvidia-smi during the loop: utilisation up to ${mm.util}%, memory up to ${mm.memMiB} MiB`);

  say(
    `== training steps: random ${f.model_type} d_model ${f.d_model}, ${f.n_layers} blocks, LoRA r 8 on all linears, ${f.micro_batch_size}×${f.cutoff_len}`,
  );
  const st = await sampled(() => trainingSteps(f, backend, options));
  const mfu = peak ? `, MFU ${((100 * st.result.tflops) / peak.tflops).toFixed(1)}%` : '';
  say(
    `step ${st.result.median.toFixed(1)} ms (median of ${f.steps}), ${st.result.tokensPerS.toFixed(0)} tokens/s, ${st.result.tflops.toFixed(2)} TFLOP/s${mfu}`,
  );
  if (st.util !== null)
    say(`nvidia-smi during the steps: utilisation up to ${st.util}%, memory up to ${st.memMiB} MiB`);
  if (gpu && gpuDevice() === null) {
    say('gpu-check: FAILED: the binding no longer reports a GPU device');
    failed = true;
  }
  say(
    failed
      ? 'gpu-check: FAILED'
      : `gpu-check: passed${gpu ? '' : ' (measured on the CPU: no GPU was checked)'}`,
  );
  return failed ? 1 : 0;
}

export const gpuCheckCommand: Command = flagCommand({
  name: 'gpu-check',
  summary: 'Prove the GPU path on this node: CUDA libraries, device, precision, matmul rate, training steps',
  usage: 'lora-mpt gpu-check [flags]',
  description:
    "Run on a GPU node (the GPU image) before a run pays for it. Prints each CUDA library TensorFlow opened or why not, the device, float32 precision against float64 (TF32 shows as ~1e-3), an n³ matmul rate against the datasheet peak with nvidia-smi utilisation and memory, and training steps of a random model through the worker's compute path (step time, tokens/s, MFU). Exit 1 on any CPU fallback. scripts/gpu-check.sh runs it with TensorFlow's placement log and keeps a log file.",
  flags,
  run: (f) => runGpuCheck(f),
});

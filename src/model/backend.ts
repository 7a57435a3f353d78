// Chooses and starts the TensorFlow.js backend (`--backend auto|tensorflow|tensorflow-gpu|wasm|cpu`)
// and names the compute layout the model uses on it: plain 2-D matmuls with host-sliced attention
// where XNNPACK only serves those (wasm, cpu), batched matmuls with transpose flags elsewhere
// (tensorflow/GPU). A required GPU (tensorflow-gpu, or LORA_MPT_REQUIRE_GPU=1) is proven by a probe
// before anything loads; without one the process stops with TensorFlow's own reasons, never a CPU.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { describeProbe, GPU_BINDING, type GpuProbe, onGpu, probeGpu } from './gpu-probe.ts';

export type BackendChoice = 'auto' | 'tensorflow' | 'tensorflow-gpu' | 'wasm' | 'cpu' | 'synthetic';
/** 'synthetic' computes no model and starts no TensorFlow.js backend (src/worker/synthetic-compute.ts):
 * only `finetune` and `worker` take it, and initBackend refuses it. */
export const BACKEND_CHOICES: readonly BackendChoice[] = [
  'auto',
  'tensorflow',
  'tensorflow-gpu',
  'wasm',
  'cpu',
  'synthetic',
];

/**
 * The one switch between the two formulations of the same math:
 * - 'plain-2d': frozen weights stored as W [out,in] and Wᵀ [in,out] so every matmul is a plain 2-D
 *   call (the only kind the wasm backend runs fast), attention cut per (batch, head) on the host.
 * - 'batched': one copy of each weight, transpose flags and batched attention (GPU friendly).
 */
export type ComputeLayout = 'plain-2d' | 'batched';

export function layoutFor(backendName: string): ComputeLayout {
  return backendName === 'wasm' || backendName === 'cpu' ? 'plain-2d' : 'batched';
}

export interface ActiveBackend {
  /** tf.getBackend() after start: 'tensorflow', 'wasm' or 'cpu'. */
  readonly name: string;
  readonly layout: ComputeLayout;
  /** One line for the logs: which backend runs and why, e.g. "backend tensorflow (@tensorflow/tfjs-node
   * 4.22.0, libtensorflow 2.16.2, 2 intra-op threads from --num_threads)" or "backend wasm
   * (single-threaded SIMD): @tensorflow/tfjs-node is not installed (run scripts/setup.sh)". */
  readonly summary: string;
}

/** How to start the backend; the CLI builds it from flags and environment (src/cli/backend-options.ts). */
export interface BackendOptions {
  /** TensorFlow intra-op threads; 0 or absent: TensorFlow's default (one per available CPU). */
  readonly numThreads?: number;
  /** Where numThreads came from, for the log line (e.g. '--num_threads', 'TF_NUM_INTRAOP_THREADS'). */
  readonly numThreadsSource?: string;
  /** Behave as if no native binding were installed (LORA_MPT_DISABLE_NATIVE=1). */
  readonly disableNative?: boolean;
  /** TF_CPP_MIN_LOG_LEVEL for the native runtime; default '2' (no oneDNN / CPU-feature notices). */
  readonly tfLogLevel?: string;
  /** Refuse to start unless TensorFlow computes on a GPU (LORA_MPT_REQUIRE_GPU=1; --backend
   * tensorflow-gpu implies it). */
  readonly requireGpu?: boolean;
  /** TF32 tensor-core matmuls for float32 (about 1e-3 relative); off: full float32, as PyTorch's
   * default and the 1e-5 equivalence criterion assume (docs/backends.md). */
  readonly tf32?: boolean;
  /** Let TensorFlow grow its GPU memory as needed instead of taking nearly all of it at start, so
   * several processes can share a GPU; default true (TF_FORCE_GPU_ALLOW_GROWTH). */
  readonly gpuAllowGrowth?: boolean;
  /** The environment a GPU probe runs with (the process's own). */
  readonly env?: NodeJS.ProcessEnv;
}

/** A GPU was required and TensorFlow does not compute on one here; the message carries its log. */
export class GpuRequiredError extends Error {
  override name = 'GpuRequiredError';
  constructor(
    message: string,
    readonly probe: GpuProbe,
  ) {
    super(message);
  }
}

const NODE_BINDINGS = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
const SETUP_HINT = 'run scripts/setup.sh';

/** What the native runtime was started with: it reads its settings once, when the binding loads. */
let nativeStarted: { binding: string; summary: string; numThreads: number } | null = null;
/** What the GPU probe found, when one ran: the device named in the log line and in build_info. */
let probed: GpuProbe | null = null;

/** Imports an optional binding; returns null when it loaded, else why not. */
async function tryImport(name: string): Promise<string | null> {
  try {
    // A variable specifier keeps TypeScript from requiring these optional packages at compile time.
    await import(name);
    return null;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const message = (err as Error).message;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${name}'`))
      return `${name} is not installed`;
    if (/native addon module .*can not be found/s.test(message))
      return `${name} is installed but its native addon is not built`;
    return `${name} is installed but failed to load: ${message.split('\n')[0]}`;
  }
}

/** The runtime's settings go in through its environment, before the binding loads (the C++ side reads
 * TF_NUM_INTRAOP_THREADS when it creates its context, TF_CPP_MIN_LOG_LEVEL when it logs). The thread
 * count is always written, TensorFlow's own default included, so the log line states what runs. */
function prepareNativeEnv(o: BackendOptions): void {
  process.env.TF_CPP_MIN_LOG_LEVEL = o.tfLogLevel ?? '2';
  // Read by cuBLAS/cuDNN and TensorFlow's GPU allocator when they load: harmless on a CPU.
  process.env.NVIDIA_TF32_OVERRIDE = o.tf32 ? '1' : '0';
  process.env.TF_FORCE_GPU_ALLOW_GROWTH = o.gpuAllowGrowth === false ? 'false' : 'true';
  process.env.TF_NUM_INTRAOP_THREADS = String(
    (o.numThreads ?? 0) > 0 ? o.numThreads : availableParallelism(),
  );
}

function describeNative(binding: string, o: BackendOptions): string {
  const require = createRequire(import.meta.url);
  const version = (require(`${binding}/package.json`) as { version: string }).version;
  const native = tf.backend() as unknown as { binding?: { TF_Version?: string }; isUsingGpuDevice?: boolean };
  const threads =
    (o.numThreads ?? 0) > 0
      ? `${o.numThreads} intra-op thread${o.numThreads === 1 ? '' : 's'} from ${o.numThreadsSource ?? 'the caller'}`
      : `${availableParallelism()} intra-op threads, TensorFlow's default of one per CPU`;
  const device = probed?.device ? ` ${probed.device}` : '';
  const gpu = binding.endsWith('-gpu')
    ? `, ${native.isUsingGpuDevice ? `on GPU${device}, TF32 ${o.tf32 ? 'on' : 'off'}` : 'NO GPU found: computing on the CPU'}`
    : ', on the CPU';
  return `backend tensorflow (${binding} ${version}, libtensorflow ${native.binding?.TF_Version ?? '?'}, ${threads}${gpu})`;
}

/** Starts the native backend; returns its log line, or why it could not start. */
async function startTensorflow(o: BackendOptions): Promise<{ summary: string } | { failure: string }> {
  if (o.disableNative) {
    return { failure: 'native TensorFlow is switched off (LORA_MPT_DISABLE_NATIVE=1)' };
  }
  const threads = o.numThreads ?? 0;
  if (nativeStarted !== null) {
    // Compared with the count it started with, TensorFlow's default resolved: prepareNativeEnv wrote
    // that count to TF_NUM_INTRAOP_THREADS, which a second command in this process reads back.
    if (threads > 0 && threads !== nativeStarted.numThreads) {
      throw new Error(
        `TensorFlow already runs in this process with ${nativeStarted.numThreads} intra-op threads; it cannot change to ${threads}`,
      );
    }
    if (await tf.setBackend('tensorflow')) return { summary: nativeStarted.summary };
  }
  prepareNativeEnv(o);
  if (o.requireGpu) return startRequiredGpu(o, threads);
  const reasons: string[] = [];
  for (const name of NODE_BINDINGS) {
    const failure = await tryImport(name);
    if (failure !== null) {
      reasons.push(failure);
      continue;
    }
    if (await tf.setBackend('tensorflow')) {
      // tfjs-node-gpu present but broken is a GPU node in trouble: say so beside the CPU binding.
      const gpuTrouble = reasons.find((r) => r.startsWith(GPU_BINDING) && !r.endsWith('is not installed'));
      const summary = describeNative(name, o) + (gpuTrouble ? `; ${gpuTrouble}` : '');
      nativeStarted = { binding: name, summary, numThreads: threads > 0 ? threads : availableParallelism() };
      return { summary };
    }
    reasons.push(`${name} loaded but the 'tensorflow' backend did not start`);
  }
  // tfjs-node-gpu is optional even where tfjs-node is the answer: name it only when it is there.
  return { failure: reasons.filter((r, i) => i > 0 || !r.endsWith('is not installed')).join('; ') };
}

/** The GPU binding only, after a probe proved it computes on a GPU; any doubt is an error. */
async function startRequiredGpu(o: BackendOptions, threads: number): Promise<{ summary: string }> {
  // Resolved from here, as the import below resolves it: the probe checks the binding this process loads.
  const probe = await probeGpu(o.env ?? process.env, path.dirname(fileURLToPath(import.meta.url)));
  const refuse = (why: string): never => {
    throw new GpuRequiredError(
      [
        `a GPU is required (--backend tensorflow-gpu or LORA_MPT_REQUIRE_GPU=1) and ${why}:`,
        ...describeProbe(probe),
        probe.binding === null
          ? `build it with scripts/setup-tensorflow-gpu.sh (docs/backends.md), or run without the GPU requirement on ${'`--backend tensorflow`'}`
          : 'see docs/backends.md#gpu-workers for what each line means',
      ].join('\n'),
      probe,
    );
  };
  if (probe.binding === null || probe.loadError !== null) refuse(`${GPU_BINDING} does not load`);
  if (!onGpu(probe)) refuse('TensorFlow placed the test matmul on no GPU');
  probed = probe;
  const failure = await tryImport(GPU_BINDING);
  if (failure !== null) refuse(failure);
  if (!(await tf.setBackend('tensorflow')))
    refuse(`${GPU_BINDING} loaded but the 'tensorflow' backend did not start`);
  const native = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
  if (!native.isUsingGpuDevice) refuse('the binding reports no GPU device in this process');
  nativeStarted = {
    binding: GPU_BINDING,
    summary: describeNative(GPU_BINDING, o),
    numThreads: threads > 0 ? threads : availableParallelism(),
  };
  return { summary: nativeStarted.summary };
}

/** What the GPU probe found when this process required a GPU (null otherwise): for gpu-check's report. */
export function gpuProbeReport(): GpuProbe | null {
  return probed;
}

/** The GPU the process computes on (from the probe), or null: for build_info and events. */
export function gpuDevice(): string | null {
  return nativeStarted?.binding === GPU_BINDING ? (probed?.device ?? null) : null;
}

async function startWasm(): Promise<void> {
  // Node loads the .wasm binaries from the package's dist/ folder; the single-threaded SIMD binary is
  // the measured-fast one (docs/wasm-performance.md), the threaded one needs worker setup Node lacks.
  const require = createRequire(import.meta.url);
  const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setWasmPaths(`${dist}${path.sep}`);
  if (!(await tf.setBackend('wasm'))) throw new Error(`the wasm backend did not start (binaries in ${dist})`);
}

/** Starts the chosen backend (idempotent) and returns its name, compute layout and log line. */
export async function initBackend(choice: BackendChoice, o: BackendOptions = {}): Promise<ActiveBackend> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new Error(`--backend ${String(choice)}: expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  if (choice === 'synthetic') {
    throw new Error(
      '--backend synthetic runs no model (finetune and worker only, with --base_model synthetic:...): it has no TensorFlow.js backend to start',
    );
  }
  tf.enableProdMode();
  let summary: string;
  if (choice === 'tensorflow-gpu') o = { ...o, requireGpu: true };
  if (o.requireGpu && (choice === 'wasm' || choice === 'cpu')) {
    throw new Error(
      `--backend ${choice} computes on the CPU, but a GPU is required (LORA_MPT_REQUIRE_GPU=1)`,
    );
  }
  if (choice === 'tensorflow' || choice === 'tensorflow-gpu' || choice === 'auto') {
    const started = await startTensorflow(o);
    if ('summary' in started) summary = started.summary;
    else if (choice === 'tensorflow' || o.requireGpu) {
      throw new Error(
        `--backend tensorflow: ${started.failure}. ${o.disableNative ? 'Unset it' : 'scripts/setup.sh builds @tensorflow/tfjs-node from registries (docs/backends.md)'}, or use --backend wasm`,
      );
    } else {
      await startWasm();
      const hint = o.disableNative ? '' : ` (${SETUP_HINT})`;
      summary = `backend wasm (single-threaded SIMD): ${started.failure}${hint}`;
    }
  } else if (choice === 'wasm') {
    await startWasm();
    summary = 'backend wasm (single-threaded SIMD): --backend wasm';
  } else {
    if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not start');
    summary = 'backend cpu (plain JavaScript): --backend cpu';
  }
  await tf.ready();
  const name = tf.getBackend();
  return { name, layout: layoutFor(name), summary };
}

// Chooses and starts the TensorFlow.js backend (`--backend auto|tensorflow|wasm|cpu`) and names the
// compute layout the model uses on it: plain 2-D matmuls with host-sliced attention where XNNPACK
// only serves those (wasm, cpu), batched matmuls with transpose flags elsewhere (tensorflow/GPU).
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

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
}

const NODE_BINDINGS = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
const SETUP_HINT = 'run scripts/setup.sh';

/** What the native runtime was started with: it reads its settings once, when the binding loads. */
let nativeStarted: { binding: string; summary: string; numThreads: number } | null = null;

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
  const gpu = binding.endsWith('-gpu')
    ? `, ${native.isUsingGpuDevice ? 'on GPU' : 'no GPU found: on CPU'}`
    : '';
  return `backend tensorflow (${binding} ${version}, libtensorflow ${native.binding?.TF_Version ?? '?'}, ${threads}${gpu})`;
}

/** Starts the native backend; returns its log line, or why it could not start. */
async function startTensorflow(o: BackendOptions): Promise<{ summary: string } | { failure: string }> {
  if (o.disableNative) {
    return { failure: 'native TensorFlow is switched off (LORA_MPT_DISABLE_NATIVE=1)' };
  }
  const threads = o.numThreads ?? 0;
  if (nativeStarted !== null) {
    if (threads > 0 && threads !== nativeStarted.numThreads) {
      throw new Error(
        `TensorFlow already runs in this process with ${nativeStarted.numThreads || 'its default'} intra-op threads; it cannot change to ${threads}`,
      );
    }
    if (await tf.setBackend('tensorflow')) return { summary: nativeStarted.summary };
  }
  prepareNativeEnv(o);
  const reasons: string[] = [];
  for (const name of NODE_BINDINGS) {
    const failure = await tryImport(name);
    if (failure !== null) {
      reasons.push(failure);
      continue;
    }
    if (await tf.setBackend('tensorflow')) {
      nativeStarted = { binding: name, summary: describeNative(name, o), numThreads: threads };
      return { summary: nativeStarted.summary };
    }
    reasons.push(`${name} loaded but the 'tensorflow' backend did not start`);
  }
  // tfjs-node-gpu is optional even where tfjs-node is the answer: name it only when it is there.
  return { failure: reasons.filter((r, i) => i > 0 || !r.endsWith('is not installed')).join('; ') };
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
  tf.enableProdMode();
  let summary: string;
  if (choice === 'tensorflow' || choice === 'auto') {
    const started = await startTensorflow(o);
    if ('summary' in started) summary = started.summary;
    else if (choice === 'tensorflow') {
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

// Chooses and starts the TensorFlow.js backend (`--backend auto|tensorflow|wasm|cpu`) and names the
// compute layout the model uses on it: plain 2-D matmuls with host-sliced attention where XNNPACK
// only serves those (wasm, cpu), batched matmuls with transpose flags elsewhere (tensorflow/GPU).
import { createRequire } from 'node:module';
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
}

const NODE_BINDINGS = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/** Imports an optional binding; returns null when it loaded, else why not. */
async function tryImport(name: string): Promise<string | null> {
  try {
    // A variable specifier keeps TypeScript from requiring these optional packages at compile time.
    await import(name);
    return null;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return `${name} is not installed`;
    return `${name} is installed but failed to load: ${(err as Error).message}`;
  }
}

async function startTensorflow(required: boolean): Promise<boolean> {
  const reasons: string[] = [];
  for (const name of NODE_BINDINGS) {
    const failure = await tryImport(name);
    if (failure !== null) {
      reasons.push(failure);
      continue;
    }
    if (await tf.setBackend('tensorflow')) return true;
    reasons.push(`${name} loaded but the 'tensorflow' backend did not start`);
  }
  if (required) {
    throw new Error(
      `--backend tensorflow: ${reasons.join('; ')}. Install one (npm install @tensorflow/tfjs-node-gpu@4.22.0 on CUDA machines, @tensorflow/tfjs-node@4.22.0 elsewhere) or use --backend wasm`,
    );
  }
  // auto: an installed binding that fails to load is worth a line; a missing one is the normal case.
  for (const r of reasons)
    if (r.includes('failed') || r.includes('did not start')) console.error(`backend auto: ${r}; using wasm`);
  return false;
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

/** Starts the chosen backend (idempotent) and returns its name and compute layout. */
export async function initBackend(choice: BackendChoice): Promise<ActiveBackend> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new Error(`--backend ${String(choice)}: expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  tf.enableProdMode();
  if (choice === 'tensorflow' || choice === 'auto') {
    const started = await startTensorflow(choice === 'tensorflow');
    if (!started) await startWasm();
  } else if (choice === 'wasm') {
    await startWasm();
  } else if (!(await tf.setBackend('cpu'))) {
    throw new Error('the cpu backend did not start');
  }
  await tf.ready();
  const name = tf.getBackend();
  return { name, layout: layoutFor(name) };
}

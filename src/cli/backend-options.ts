// The compute backend's settings, from flags and environment in one place (STYLE: configuration has
// one source): --num_threads (else TF_NUM_INTRAOP_THREADS), LORA_MPT_DISABLE_NATIVE=1 (run as if no
// native binding were installed), TF_CPP_MIN_LOG_LEVEL (else 2: TensorFlow's notices silenced),
// LORA_MPT_REQUIRE_GPU=1 (no GPU: no start), LORA_MPT_TF32=1 (TF32 matmuls; off by default) and
// TF_FORCE_GPU_ALLOW_GROWTH (true unless set to false).
import type { BackendOptions } from '../model/backend.ts';
import { UsageError } from './flags.ts';

/** A 0/1 switch from the environment (unset or empty: off); anything else names the variable. */
function envSwitch(env: NodeJS.ProcessEnv, name: string): boolean {
  const v = env[name];
  if (v === undefined || v === '' || v === '0') return false;
  if (v === '1') return true;
  throw new UsageError(`${name}=${v}: expected 1 (or 0 / unset)`);
}

export function backendOptions(numThreads: number, env: NodeJS.ProcessEnv): BackendOptions {
  const fromEnv = env.TF_NUM_INTRAOP_THREADS;
  let threads: Pick<BackendOptions, 'numThreads' | 'numThreadsSource'> = {};
  if (numThreads > 0) threads = { numThreads, numThreadsSource: '--num_threads' };
  else if (fromEnv !== undefined && fromEnv !== '') {
    if (!/^\d+$/.test(fromEnv) || Number(fromEnv) < 1) {
      throw new UsageError(`TF_NUM_INTRAOP_THREADS=${fromEnv}: expected a whole number >= 1`);
    }
    threads = { numThreads: Number(fromEnv), numThreadsSource: 'TF_NUM_INTRAOP_THREADS' };
  }
  const disable = env.LORA_MPT_DISABLE_NATIVE;
  if (disable !== undefined && !['', '0', '1'].includes(disable)) {
    throw new UsageError(`LORA_MPT_DISABLE_NATIVE=${disable}: expected 1 (or 0 / unset)`);
  }
  return {
    ...threads,
    disableNative: disable === '1',
    // Only what differs from the defaults, so the options read as what was asked for.
    ...(envSwitch(env, 'LORA_MPT_REQUIRE_GPU') ? { requireGpu: true, env } : {}),
    ...(envSwitch(env, 'LORA_MPT_TF32') ? { tf32: true } : {}),
    ...(env.TF_FORCE_GPU_ALLOW_GROWTH === 'false' ? { gpuAllowGrowth: false } : {}),
    ...(env.TF_CPP_MIN_LOG_LEVEL ? { tfLogLevel: env.TF_CPP_MIN_LOG_LEVEL } : {}),
  };
}

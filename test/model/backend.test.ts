import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { backendOptions } from '../../src/cli/backend-options.ts';
import { initBackend, layoutFor } from '../../src/model/backend.ts';
import { skipWithoutTensorflow } from './support/backends.ts';

const COUNT_THREADS = fileURLToPath(new URL('./support/count-threads.ts', import.meta.url));

/** Starts tensorflow in a fresh process with `numThreads` and returns its OS thread count and log line. */
function nativeProcess(numThreads: number): { threads: number; summary: string } {
  const out = execFileSync(process.execPath, ['--import', 'tsx', COUNT_THREADS, String(numThreads)], {
    encoding: 'utf8',
  });
  return JSON.parse(out) as { threads: number; summary: string };
}

describe('backend selection', () => {
  it('uses plain 2-D matmuls on wasm and cpu, batched ones on tensorflow', () => {
    assert.equal(layoutFor('wasm'), 'plain-2d');
    assert.equal(layoutFor('cpu'), 'plain-2d');
    assert.equal(layoutFor('tensorflow'), 'batched');
  });

  // disableNative is what LORA_MPT_DISABLE_NATIVE=1 sets (src/cli/backend-options.ts): the loader then
  // behaves as on a machine where scripts/setup.sh could not build the binding, installed or not.
  it('says how to get the binding when --backend tensorflow is asked for where none may load', async () => {
    await assert.rejects(
      initBackend('tensorflow', { disableNative: true }),
      /: --backend tensorflow: native TensorFlow is switched off \(LORA_MPT_DISABLE_NATIVE=1\)\. Unset it, or use --backend wasm$/,
    );
  });

  it('falls back to the single-threaded wasm backend on auto when no binding may load, and says why', async () => {
    const active = await initBackend('auto', { disableNative: true });
    assert.deepEqual([active.name, active.layout], ['wasm', 'plain-2d']);
    assert.equal(
      active.summary,
      'backend wasm (single-threaded SIMD): native TensorFlow is switched off (LORA_MPT_DISABLE_NATIVE=1)',
    );
  });

  it('picks tensorflow on auto where the binding loads, and names its versions', {
    skip: skipWithoutTensorflow(),
  }, async () => {
    const active = await initBackend('auto');
    assert.deepEqual([active.name, active.layout], ['tensorflow', 'batched']);
    assert.match(
      active.summary,
      /^backend tensorflow \(@tensorflow\/tfjs-node(-gpu)? 4\.22\.0, libtensorflow 2\.16\.2, /,
    );
  });

  it('starts tensorflow again in the same process with the options a second command reads', {
    skip: skipWithoutTensorflow(),
  }, async () => {
    // Two commands in one process (eval twice, as tests and notebooks do): the first writes
    // TensorFlow's resolved thread count to TF_NUM_INTRAOP_THREADS, which the second reads back.
    const saved = process.env.TF_NUM_INTRAOP_THREADS;
    try {
      delete process.env.TF_NUM_INTRAOP_THREADS;
      await initBackend('tensorflow', backendOptions(0, process.env));
      const again = await initBackend('tensorflow', backendOptions(0, process.env));
      assert.equal(again.name, 'tensorflow');
      await assert.rejects(
        initBackend('tensorflow', { numThreads: availableParallelism() + 1 }),
        new RegExp(
          `already runs in this process with ${availableParallelism()} intra-op threads; it cannot change to ${availableParallelism() + 1}$`,
        ),
      );
    } finally {
      if (saved === undefined) delete process.env.TF_NUM_INTRAOP_THREADS;
      else process.env.TF_NUM_INTRAOP_THREADS = saved;
    }
  });

  it('gives TensorFlow the intra-op thread count asked for: one OS thread more per thread', {
    skip: skipWithoutTensorflow(),
  }, () => {
    const one = nativeProcess(1);
    const three = nativeProcess(3);
    assert.match(one.summary, /, 1 intra-op thread from the caller[,)]/);
    assert.match(three.summary, /, 3 intra-op threads from the caller[,)]/);
    assert.equal(three.threads - one.threads, 2, `threads: ${one.threads} with 1, ${three.threads} with 3`);
  });

  it('starts cpu on request', async () => {
    const active = await initBackend('cpu');
    assert.deepEqual([active.name, active.layout], ['cpu', 'plain-2d']);
  });
});

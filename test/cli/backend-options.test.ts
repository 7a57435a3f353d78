import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backendOptions } from '../../src/cli/backend-options.ts';
import { BACKEND_NAMES } from '../../src/cli/compute-flags.ts';
import { UsageError } from '../../src/cli/flags.ts';
import { BACKEND_CHOICES } from '../../src/model/backend.ts';
import { startLoraMpt } from '../support/processes.ts';

describe('backend options from flags and environment', () => {
  it('takes the thread count from --num_threads before TF_NUM_INTRAOP_THREADS', () => {
    const env = { TF_NUM_INTRAOP_THREADS: '3' };
    assert.deepEqual(backendOptions(1, env), {
      numThreads: 1,
      numThreadsSource: '--num_threads',
      disableNative: false,
    });
    assert.deepEqual(backendOptions(0, env), {
      numThreads: 3,
      numThreadsSource: 'TF_NUM_INTRAOP_THREADS',
      disableNative: false,
    });
    assert.deepEqual(backendOptions(0, {}), { disableNative: false });
  });

  it('refuses a TF_NUM_INTRAOP_THREADS or LORA_MPT_DISABLE_NATIVE it cannot read', () => {
    assert.throws(() => backendOptions(0, { TF_NUM_INTRAOP_THREADS: 'two' }), UsageError);
    assert.throws(() => backendOptions(0, { TF_NUM_INTRAOP_THREADS: '0' }), /expected a whole number >= 1/);
    assert.throws(() => backendOptions(0, { LORA_MPT_DISABLE_NATIVE: 'yes' }), /expected 1/);
  });

  it("passes the user's TF_CPP_MIN_LOG_LEVEL on, and LORA_MPT_DISABLE_NATIVE=1 as disableNative", () => {
    const o = backendOptions(0, { TF_CPP_MIN_LOG_LEVEL: '0', LORA_MPT_DISABLE_NATIVE: '1' });
    assert.deepEqual(o, { disableNative: true, tfLogLevel: '0' });
  });

  it('reads LORA_MPT_REQUIRE_GPU, LORA_MPT_TF32 and TF_FORCE_GPU_ALLOW_GROWTH, and refuses other values', () => {
    const env = { LORA_MPT_REQUIRE_GPU: '1', LORA_MPT_TF32: '1', TF_FORCE_GPU_ALLOW_GROWTH: 'false' };
    assert.deepEqual(backendOptions(0, env), {
      disableNative: false,
      requireGpu: true,
      env,
      tf32: true,
      gpuAllowGrowth: false,
    });
    assert.deepEqual(backendOptions(0, { LORA_MPT_REQUIRE_GPU: '0', LORA_MPT_TF32: '' }), {
      disableNative: false,
    });
    assert.throws(
      () => backendOptions(0, { LORA_MPT_REQUIRE_GPU: 'yes' }),
      /LORA_MPT_REQUIRE_GPU=yes: expected 1/,
    );
    assert.throws(() => backendOptions(0, { LORA_MPT_TF32: 'on' }), /LORA_MPT_TF32=on: expected 1/);
  });

  it('lists the same --backend values for the flags as the backend itself', () => {
    assert.deepEqual([...BACKEND_NAMES], [...BACKEND_CHOICES]);
  });

  it('a worker that needs a GPU and has no GPU binding exits, naming the binding and how to build it', async () => {
    for (const [args, env] of [
      [['--backend', 'tensorflow-gpu'], {}],
      [['--backend', 'auto'], { LORA_MPT_REQUIRE_GPU: '1' }],
    ] as const) {
      const w = startLoraMpt('worker', ['worker', ...args, '--metrics_port', '0', '--insecure'], env);
      assert.notEqual(await w.exited(), 0);
      const out = w.output();
      assert.match(
        out,
        /a GPU is required \(--backend tensorflow-gpu or LORA_MPT_REQUIRE_GPU=1\) and @tensorflow\/tfjs-node-gpu does not load/,
      );
      assert.match(out, /binding: @tensorflow\/tfjs-node-gpu not installed/);
      assert.match(out, /build it with scripts\/setup-tensorflow-gpu\.sh/);
      assert.doesNotMatch(out, /backend_selected/, 'no backend was selected');
    }
  });

  it('refuses a CPU backend when a GPU is required', async () => {
    const w = startLoraMpt('worker', ['worker', '--backend', 'wasm', '--metrics_port', '0', '--insecure'], {
      LORA_MPT_REQUIRE_GPU: '1',
    });
    assert.notEqual(await w.exited(), 0);
    assert.match(
      w.output(),
      /--backend wasm computes on the CPU, but a GPU is required \(LORA_MPT_REQUIRE_GPU=1\)/,
    );
  });

  it('a worker with LORA_MPT_DISABLE_NATIVE=1 refuses --backend tensorflow and names the switch', async () => {
    const w = startLoraMpt(
      'worker',
      ['worker', '--backend', 'tensorflow', '--metrics_port', '0', '--insecure'],
      {
        LORA_MPT_DISABLE_NATIVE: '1',
      },
    );
    assert.notEqual(await w.exited(), 0);
    assert.match(
      w.output(),
      /--backend tensorflow: native TensorFlow is switched off \(LORA_MPT_DISABLE_NATIVE=1\)/,
    );
  });
});

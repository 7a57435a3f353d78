import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backendOptions } from '../../src/cli/backend-options.ts';
import { UsageError } from '../../src/cli/flags.ts';
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

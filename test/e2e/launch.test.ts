import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deviceOf, gpuDevices } from '../../src/cli/launch.ts';
import { assertSameAdapter } from '../support/adapters.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// `lora-mpt launch` on one machine: a local nats-server, the coordinator and one worker per GPU, as
// torchrun does; a worker that dies is started again and the run still ends with finetune's adapter.
const training = (run: TinyRun, out: string) =>
  runArgs(run, out, {
    batch_size: 8,
    micro_batch_size: 2,
    max_steps: 4,
    cutoff_len: 48,
    val_set_size: 0,
    save_steps: 1,
    learning_rate: '1e-2',
    lora_target_modules: '[Wqkv,out_proj]',
  });

describe('lora-mpt launch', () => {
  let run: TinyRun;
  let reference: string;
  before(async () => {
    run = await tinyRun([0, 64]);
    reference = join(run.dir, 'finetune');
    const ft = startLoraMpt('finetune', ['finetune', ...training(run, reference)]);
    assert.equal(await ft.exited(), 0, ft.output());
  });
  after(() => run?.cleanup());

  it('gives worker i GPU i, or the i-th of CUDA_VISIBLE_DEVICES, and refuses more workers than GPUs listed', () => {
    assert.deepEqual(
      [0, 1, 2].map((i) => deviceOf(i, 3, undefined)),
      ['0', '1', '2'],
    );
    assert.deepEqual(
      [0, 1].map((i) => deviceOf(i, 2, '4, 6,7')),
      ['4', '6'],
    );
    assert.throws(
      () => deviceOf(0, 3, '0,1'),
      /--nproc_per_node 3: CUDA_VISIBLE_DEVICES=0,1 lists 2 GPU\(s\)/,
    );
  });

  it('never hands a worker a GPU that is not there: counted GPUs bound the workers, none means the CPU', () => {
    assert.deepEqual(gpuDevices(2, undefined, 2, false), ['0', '1']);
    assert.deepEqual(gpuDevices(2, '3,5', null, true), ['3', '5']);
    // A 1-GPU machine: worker 1 would get CUDA_VISIBLE_DEVICES=1, see no GPU and compute on the CPU.
    assert.throws(
      () => gpuDevices(2, undefined, 1, false),
      /--nproc_per_node 2: this machine has 1 GPU\(s\) \(nvidia-smi -L\); start at most 1 workers/,
    );
    assert.deepEqual(gpuDevices(2, undefined, null, false), [null, null]);
    assert.deepEqual(gpuDevices(2, undefined, 0, false), [null, null]);
    assert.throws(
      () => gpuDevices(1, undefined, null, true),
      /a GPU is required .* nvidia-smi -L did not run/,
    );
    assert.throws(() => gpuDevices(1, '', 0, true), /a GPU is required .* nvidia-smi -L lists no GPU/);
  });

  it('refuses --backend tensorflow-gpu on a machine with no GPU, before starting anything', async () => {
    const launch = startLoraMpt(
      'launch',
      [
        'launch',
        '--nproc_per_node',
        '1',
        '--backend',
        'tensorflow-gpu',
        ...training(run, join(run.dir, 'gpu')),
      ],
      {
        CUDA_VISIBLE_DEVICES: '',
        PATH: '/usr/bin:/bin',
      },
    );
    assert.equal(await launch.exited(), 2, launch.output());
    assert.match(
      launch.output(),
      /a GPU is required \(--backend tensorflow-gpu or LORA_MPT_REQUIRE_GPU=1\) but none is visible/,
    );
  });

  it('runs N workers (one per GPU) and restarts one that is killed; the adapter equals finetune', async () => {
    const out = join(run.dir, 'launched');
    // Two listed GPUs, as on a 2-GPU node (this machine has none; the CPU binding ignores the list).
    const launch = startLoraMpt(
      'launch',
      ['launch', '--nproc_per_node', '2', ...training(run, out), '--log_format', 'json'],
      { CUDA_VISIBLE_DEVICES: '0,1' },
    );
    const started = await Promise.all(
      ['worker-0', 'worker-1'].map((w) =>
        launch.waitForEvent('worker_started', (e) => e.worker === w, { ms: 120_000 }),
      ),
    );
    assert.deepEqual(
      started.map((e) => e.cuda_visible_devices),
      ['0', '1'],
      'each worker sees its own GPU',
    );
    // Kill worker-1 once the run is under way: launch starts it again and it rejoins.
    await launch.waitForEvent('step_committed', (e) => e.step === 1, { ms: 120_000 });
    process.kill(Number(started[1]!.pid), 'SIGKILL');
    const again = await launch.waitForEvent(
      'worker_started',
      (e) => e.worker === 'worker-1' && e.pid !== started[1]!.pid,
      {
        ms: 120_000,
      },
    );
    assert.equal(again.cuda_visible_devices, '1');
    assert.equal(await launch.exited(), 0, launch.output());
    assert.ok(launch.events().some((e) => e.event === 'run_finished' && e.step === 4));
    await assertSameAdapter(reference, out, 1e-5);
  });
});

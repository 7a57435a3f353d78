import assert from 'node:assert/strict';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameAdapter } from '../support/adapters.ts';
import { containerEngine } from '../support/container-engine.ts';
import {
  containersLeft,
  LORA_MPT_IMAGE,
  type Mount,
  requireImage,
  startLoraMptContainer,
} from '../support/containers.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import type { LoraCommand } from '../support/lora-output.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// The image as a cluster runs it: nats-server, the coordinator and two workers, each a container of
// the lora-mpt image (UID 1000, read-only root filesystem, no capabilities) started through the
// engine's Docker API, the run's folder mounted read-only and its output folder writable. The run
// must end with the adapter single-process `finetune` (a process on the host) writes.
const training = (run: TinyRun, out: string) =>
  runArgs(run, out, {
    batch_size: 8,
    micro_batch_size: 2,
    max_steps: 3,
    cutoff_len: 48,
    val_set_size: 6,
    eval_steps: 3,
    save_steps: 3,
    warmup_steps: 1,
    learning_rate: '1e-2',
    lora_dropout: 0.1,
    lora_target_modules: '[Wqkv,out_proj]',
  });

const engine = await containerEngine();
// Without an engine a developer's run skips this file and says why; CI must run it.
const skip = 'absent' in engine && !process.env.CI ? engine.absent : false;

describe(`the lora-mpt image (${LORA_MPT_IMAGE}) runs a distributed training as containers`, { skip }, () => {
  let run: TinyRun;
  let nats: NatsServer | undefined;
  before(async () => {
    if ('absent' in engine) throw new Error(`CI needs a container engine: ${engine.absent}`);
    await requireImage();
    run = await tinyRun([200, 280]);
    const ft = startLoraMpt('finetune', ['finetune', ...training(run, join(run.dir, 'finetune'))]);
    assert.equal(await ft.exited(), 0, ft.output());
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  // The container user (UID 1000) reads the run's folder and writes only the output folder.
  const outputFolder = (name: string) => {
    const out = join(run.dir, name);
    mkdirSync(out);
    chmodSync(out, 0o777);
    chmodSync(run.dir, 0o755);
    const mounts: Mount[] = [
      { source: run.dir, target: run.dir, mode: 'ro' },
      { source: out, target: out, mode: 'rw' },
    ];
    return { out, mounts };
  };

  it('gives the adapter of single-process finetune within 1e-5, and leaves no container behind', async (t) => {
    t.diagnostic(`engine: ${'absent' in engine ? '-' : `${engine.name} at ${engine.host}`}`);
    nats = await startNats({ maxPayload: 64 * 1024 });
    assert.equal(nats.kind, 'container', 'NATS runs in a container where an engine answers');
    const { out, mounts } = outputFolder('containers');
    const d = await startDistributedRun(
      { natsUrl: nats.url, trainingFlags: training(run, out), workers: ['w0', 'w1'] },
      (name, args) => startLoraMptContainer(name, args, mounts),
    );
    const all: LoraCommand[] = [d.coordinator, ...d.workers];
    try {
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      for (const w of d.workers) assert.equal(await w.exited(), 0, w.output());
    } finally {
      await d.stop();
      await nats.stop();
      nats = undefined;
    }
    assert.deepEqual(await containersLeft(), [], 'every container of this test is removed');

    const diff = await assertSameAdapter(join(run.dir, 'finetune'), out, 1e-5);
    t.diagnostic(`largest per-tensor ||a-b||/||a||: ${diff.relative.toExponential(2)}`);
    // Both workers computed, each on the image's native backend.
    const computed = new Set(
      d.coordinator
        .events()
        .filter((e) => e.event === 'step_committed')
        .flatMap((e) => Object.keys(e.micro_batches as Record<string, number>)),
    );
    assert.deepEqual([...computed].sort(), ['w0', 'w1']);
    for (const w of all.slice(1)) {
      const backend = w.events().find((e) => e.event === 'backend_selected');
      assert.match(backend?.msg ?? '', /^backend tensorflow \(@tensorflow\/tfjs-node(-gpu)? /, w.name);
      t.diagnostic(`${w.name}: ${backend?.msg}`);
    }
  });

  it('runs `lora-mpt launch` (its own nats-server, coordinator, 2 workers) in one container to the same adapter', async () => {
    const { out, mounts } = outputFolder('launch');
    const launch = startLoraMptContainer(
      'launch',
      ['launch', '--nproc_per_node', '2', ...training(run, out), '--log_format', 'json'],
      mounts,
    );
    try {
      assert.equal(await launch.exited(), 0, launch.output());
    } finally {
      await launch.kill();
    }
    assert.deepEqual(await containersLeft(), []);
    const started = launch.events().filter((e) => e.event === 'worker_started');
    assert.deepEqual(started.map((e) => e.worker).sort(), ['worker-0', 'worker-1']);
    await assertSameAdapter(join(run.dir, 'finetune'), out, 1e-5);
  });
});

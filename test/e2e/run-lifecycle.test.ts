import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDistributedRun } from '../support/distributed-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// How a run ends, said plainly: finished (workers leave, nobody is "lost"), stopped by a signal
// (a checkpoint of the newest step, "stopped", not "done"), or started again when already finished.
const training = (run: TinyRun, out: string) =>
  runArgs(run, out, {
    batch_size: 8,
    micro_batch_size: 4,
    max_steps: 3,
    cutoff_len: 48,
    val_set_size: 0,
    save_steps: 100,
    learning_rate: '1e-2',
  });

const checkpoints = (out: string) => readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n));

describe('run lifecycle', () => {
  let run: TinyRun;
  let nats: NatsServer;
  before(async () => {
    run = await tinyRun([0, 40]);
    nats = await startNats();
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  it('finishes with workers leaving, not lost; started again on its output dir it exits 0 at once', async () => {
    const out = join(run.dir, 'finished');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: training(run, out),
      workers: ['w0', 'w1'],
    });
    try {
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      for (const w of d.workers) assert.equal(await w.exited(), 0, w.output());
    } finally {
      await d.stop();
    }
    const events = d.coordinator.events();
    assert.ok(events.some((e) => e.event === 'run_finished' && e.step === 3));
    assert.deepEqual(
      events.filter((e) => e.event === 'worker_lost').map((e) => e.msg),
      [],
      'a worker leaving a finished run is not lost',
    );
    for (const w of d.workers) assert.ok(w.events().some((e) => e.event === 'run_finished'));

    // A Job restarted after success: the same command on the same output dir.
    const again = startLoraMpt('coordinator (again)', [
      'coordinator',
      ...training(run, out),
      '--listen',
      '127.0.0.1:0',
      '--nats',
      nats.url,
      '--metrics_port',
      '0',
      '--insecure',
    ]);
    assert.equal(await again.exited(), 0, again.output());
    assert.ok(again.events().some((e) => e.event === 'run_already_finished' && e.step === 3));
    assert.ok(!again.events().some((e) => e.event === 'run_started'), 'it waits for no worker');
  });

  it('says "stopped", saves the newest step and exits 143 when SIGTERM stops the coordinator', async () => {
    const out = join(run.dir, 'stopped');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: [...training(run, out), '--max_steps', '50'],
      workers: ['w0'],
    });
    try {
      await d.coordinator.waitForEvent('step_committed', (e) => e.step! >= 2, { ms: 120_000 });
      d.coordinator.child.kill('SIGTERM');
      assert.equal(await d.coordinator.exited(), 143, d.coordinator.output());
      const stopped = d.coordinator.events().find((e) => e.event === 'run_stopped');
      assert.ok(stopped, 'a run_stopped event');
      assert.ok(!d.coordinator.events().some((e) => e.event === 'run_finished'), 'not reported as done');
      const step = stopped.step!;
      assert.ok(step >= 2 && step < 50);
      assert.deepEqual(checkpoints(out), [`checkpoint-${step}`], 'the newest committed step is saved');
      assert.ok(
        !existsSync(join(out, 'adapter_model.safetensors')),
        'no result adapter for an unfinished run',
      );
      // The worker is told the run is over and exits.
      assert.equal(await d.workers[0]!.exited(), 0, d.workers[0]!.output());
    } finally {
      await d.stop();
    }
  });

  it('gives two workers on one host with default flags their own metrics ports', async () => {
    const workers = ['a', 'b'].map((id) =>
      startLoraMpt(id, [
        'worker',
        '--worker_id',
        id,
        '--nats',
        nats.url,
        '--coordinator',
        '127.0.0.1:1',
        // Both must be alive when the second binds its port: they wait for a coordinator meanwhile.
        '--give_up_after_ms',
        '120000',
        '--insecure',
      ]),
    );
    const started = await Promise.all(workers.map((w) => w.waitForEvent('worker_started')));
    const ports = started.map((e) => e.metrics_port);
    assert.notEqual(ports[0], ports[1], `metrics ports ${ports.join(', ')}`);
    for (const w of workers) await w.kill();
    // A port the user names and cannot have is an error naming the flag.
    const taken = String(ports[0]);
    const holder = startLoraMpt('holder', [
      'worker',
      '--worker_id',
      'h',
      '--nats',
      nats.url,
      '--coordinator',
      '127.0.0.1:1',
      '--metrics_port',
      taken,
      // It holds the port through the test: it waits for a coordinator that never comes.
      '--give_up_after_ms',
      '120000',
      '--insecure',
    ]);
    await holder.waitForEvent('worker_started');
    // Given up soon if the port were free after all: then the test fails on the exit code, never hangs.
    const clash = startLoraMpt('clash', [
      'worker',
      '--coordinator',
      '127.0.0.1:1',
      '--give_up_after_ms',
      '5000',
      '--nats',
      nats.url,
      '--metrics_port',
      taken,
      '--insecure',
    ]);
    assert.equal(await clash.exited(), 2, clash.output());
    assert.match(clash.output(), new RegExp(`--metrics_port ${taken}: .* is already in use`));
    await holder.kill();
  });
});

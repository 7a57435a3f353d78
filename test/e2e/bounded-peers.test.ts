import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { assertLedgersWhole, faultTraining, stepRecords, writeReference } from '../support/fault-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

/** Whether /healthz answers at `host`:`port` (127.0.0.2 is loopback too, but another address). */
const answers = (host: string, port: number) =>
  fetch(`http://${host}:${port}/healthz`).then(
    (r) => r.ok,
    () => false,
  );

// Real processes: a peer that takes micro-batches and never reports them, while its heartbeats
// flow, is lost at the default deadline (derived from the run's measured micro-batch times, at
// least --heartbeat_timeout_ms): no --microbatch_timeout_ms is given.
describe('bounded peers', () => {
  let run: TinyRun;
  let nats: NatsServer;
  let reference: string;
  before(async () => {
    run = await tinyRun([200, 320]);
    nats = await startNats({ maxPayload: 64 * 1024 });
    reference = await writeReference(run);
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  it('serves /metrics only on the --listen host (coordinator) and on 127.0.0.1 (worker) by default', async () => {
    const out = join(run.dir, 'metrics-host');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 1,
    });
    try {
      const port = Number((await d.coordinator.waitForEvent('run_started')).metrics_port);
      assert.equal(await answers('127.0.0.1', port), true);
      assert.equal(await answers('127.0.0.2', port), false, 'not on every address');
    } finally {
      await d.stop();
    }
    const w = startLoraMpt('worker', [
      'worker',
      '--nats',
      nats.url,
      '--coordinator',
      '127.0.0.1:1',
      '--insecure',
    ]);
    try {
      const port = Number((await w.waitForEvent('worker_started')).metrics_port);
      assert.equal(await answers('127.0.0.1', port), true);
      assert.equal(await answers('127.0.0.2', port), false, 'not on every address');
    } finally {
      await w.kill();
    }
  });

  it('loses a worker that hoards micro-batches at the derived default deadline', async () => {
    const out = join(run.dir, 'hoarder');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 1,
      coordinatorFlags: ['--heartbeat_timeout_ms', '3000'],
    });
    // It computes 2 micro-batches, then holds whatever it is dealt, heartbeats flowing.
    const hoarder = d.startWorker('hoarder', ['--inject_fault', 'hold_after_microbatches=2']);
    await hoarder.waitForEvent('replica_synced', undefined, { ms: 120_000 });
    const good = d.startWorker('w0');
    try {
      await hoarder.waitForEvent('fault_injected', (e) => e.fault === 'hold', { ms: 120_000 });
      const lost = await d.coordinator.waitForEvent('worker_lost', (e) => e.worker === 'hoarder');
      assert.match(String(lost.why), /not reported within \d+ ms/);
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      assert.equal(await good.exited(), 0, good.output());
      assertLedgersWhole(stepRecords(out), 4);
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });
});

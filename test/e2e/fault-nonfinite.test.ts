import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { assertLedgersWhole, faultTraining, stepRecords, writeReference } from '../support/fault-run.ts';
import { scrape } from '../support/metrics.ts';
import { type NatsServer, startNats } from '../support/nats.ts';

// Real processes: nothing non-finite is ever committed (docs/security.md). A worker whose device
// produces a NaN gradient loses its session (its micro-batches go to others), and is dropped from
// the run when it does it again; the run ends with the fault-free adapter.
describe('non-finite results', () => {
  let run: Awaited<ReturnType<typeof import('../support/tiny-run.ts').tinyRun>>;
  let nats: NatsServer;
  let reference: string;
  before(async () => {
    const { tinyRun } = await import('../support/tiny-run.ts');
    run = await tinyRun([200, 320]);
    nats = await startNats({ maxPayload: 64 * 1024 });
    reference = await writeReference(run);
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  it('refuses a NaN gradient, resets then drops the worker, and commits only finite steps', async () => {
    const out = join(run.dir, 'nan');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 1,
    });
    const metricsPort = Number(
      (await d.coordinator.waitForEvent('run_started', undefined, { ms: 120_000 })).metrics_port,
    );
    // Its 2nd train micro-batch of every session has an all-NaN gradient (its loss looks normal).
    const bad = d.startWorker('bad', ['--inject_fault', 'nan_gradient_at=2']);
    await bad.waitForEvent('replica_synced', undefined, { ms: 120_000 });
    // Slow enough that micro-batches are still pending when `bad` comes back for its second session.
    const good = d.startWorker('w0', ['--inject_fault', 'slow_ms=300']);
    try {
      const first = await d.coordinator.waitForEvent(
        'result_refused',
        (e) => e.worker === 'bad' && e.offences === 1,
        { ms: 120_000 },
      );
      assert.equal(first.dropped, false, 'the first refused result costs the session, not the place');
      assert.match(String(first.why), /not finite/);
      // The refused worker's micro-batches of the step go back to the queue.
      await d.coordinator.waitForEvent('microbatches_requeued', (e) => e.worker === 'bad');
      const second = await d.coordinator
        .waitForEvent('result_refused', (e) => e.worker === 'bad' && e.offences === 2, { ms: 120_000 })
        .catch((err: Error) => assert.fail(`${err.message}\n--- bad:\n${bad.output()}`));
      assert.equal(second.dropped, true, 'the second one drops it from the run');
      assert.equal(await scrape(metricsPort, 'lora_mpt_refused_results_total', { outcome: 'reset' }), 1);
      assert.equal(await scrape(metricsPort, 'lora_mpt_refused_results_total', { outcome: 'dropped' }), 1);
      assert.equal(await bad.exited(), 3, `a dropped worker exits with the refusal:\n${bad.output()}`);
      assert.ok(bad.events().some((e) => e.event === 'session_refused'));
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      assert.equal(await good.exited(), 0, good.output());
      const records = stepRecords(out);
      assertLedgersWhole(records, 4);
      for (const r of records) {
        for (const k of ['loss', 'grad_norm'] as const) {
          const v = (r as unknown as Record<string, number>)[k];
          assert.ok(Number.isFinite(v), `step ${r.step} ${k} = ${v}`);
        }
      }
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('reports a worker whose gradients are far from the others (event and metric) without refusing it', async () => {
    const out = join(run.dir, 'outlier');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: ['w0', 'w1'],
      minWorkers: 3,
      // The report tier only: at the default factor the shard owners' measures would refuse a
      // 10000x contribution (test/security/contribution-refusal.test.ts), and nothing would be reported.
      coordinatorFlags: ['--contribution_norm_factor', '0'],
      // Slow enough that the coordinator still serves /metrics when the test reads it.
      workerFlags: ['--inject_fault', 'slow_ms=300'],
    });
    const big = d.startWorker('big', ['--inject_fault', 'scale_gradient=10000']);
    const metricsPort = Number((await d.coordinator.waitForEvent('run_started')).metrics_port);
    try {
      const e = await d.coordinator.waitForEvent('gradient_outlier', (x) => x.worker === 'big', {
        ms: 120_000,
      });
      assert.ok(Number(e.per_token) > 50 * Number(e.others_per_token));
      assert.equal(await scrape(metricsPort, 'lora_mpt_gradient_outliers_total', { worker: 'big' }), 1);
      assert.ok(
        !d.coordinator.events().some((x) => x.event === 'gradient_outlier' && x.worker !== 'big'),
        'the honest workers agree with each other',
      );
      assert.ok(!d.coordinator.events().some((x) => x.event === 'result_refused'), 'reported, not refused');
      assert.equal(await big.exited(), 0, big.output());
    } finally {
      await d.stop();
    }
  });
});

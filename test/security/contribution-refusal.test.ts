import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { assertLedgersWhole, faultTraining, stepRecords, writeReference } from '../support/fault-run.ts';
import { scrape } from '../support/metrics.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import type { TinyRun } from '../support/tiny-run.ts';

// Real processes (issue #23, found 2): a worker with valid credentials whose gradients are finite
// but absurd. Before, 1e30 gradients were committed every step and a lying norm raised nothing. Now
// the shard owners measure each contribution while summing it (docs/security.md, "Contributions
// measured by peers"): the coordinator refuses it, the offender's micro-batches are recomputed by
// the honest workers, the offender is quarantined, and the run ends with the fault-free adapter.
describe('contributions measured by peers', () => {
  let run: TinyRun;
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

  const cases = [
    { name: 'honest-1e30', fault: 'scale_gradient=1e30', kinds: ['outlier'] },
    { name: 'lying-1e30', fault: 'scale_gradient=1e30,lie_norm=1e-30', kinds: ['lying_norm'] },
    // Silent data corruption: 1% of its gradient values with one random bit flipped. A flip that
    // makes a value non-finite makes its reported norm non-finite too: that result is refused
    // before any all-reduce (result_refused), the rest by the owners' measures.
    { name: 'flip-bits', fault: 'flip_bits=0.01', kinds: ['outlier', 'lying_norm'] },
  ] as const;

  for (const c of cases) {
    it(`refuses ${c.fault}: recomputed by others, quarantined, adapter equal to finetune`, async (t) => {
      const out = join(run.dir, c.name);
      const d = await startDistributedRun({
        natsUrl: nats.url,
        trainingFlags: faultTraining(run, out),
        workers: [],
        minWorkers: 2,
      });
      const metricsPort = Number(d.coordinator.events().find((e) => e.event === 'run_started')?.metrics_port);
      // `bad` is synced first; the run starts with the first honest worker beside it, so both
      // contribute to step 0 and the owners measure `bad` against an honest contribution.
      const bad = d.startWorker('bad', ['--inject_fault', c.fault]);
      await bad.waitForEvent('replica_synced', undefined, { ms: 120_000 });
      d.startWorker('w0', ['--inject_fault', 'slow_ms=300']);
      d.startWorker('w1', ['--inject_fault', 'slow_ms=300']);
      try {
        // Its micro-batches of the step go back to the queue, for the honest workers.
        await d.coordinator
          .waitForEvent('microbatches_requeued', (e) => e.worker === 'bad', { ms: 120_000 })
          .catch((err: Error) => assert.fail(`${err.message}\n--- coordinator:\n${d.coordinator.output()}`));
        const first = d.coordinator
          .events()
          .find(
            (e) => (e.event === 'contribution_refused' || e.event === 'result_refused') && e.worker === 'bad',
          );
        assert.ok(first, `a refusal precedes the requeue:\n${d.coordinator.output()}`);
        if (c.name !== 'flip-bits') assert.equal(first.event, 'contribution_refused', String(first.why));
        if (first.event === 'contribution_refused') {
          assert.ok((c.kinds as readonly string[]).includes(String(first.kind)), String(first.why));
          const q = await d.coordinator.waitForEvent(
            'worker_quarantined',
            (e) => e.worker === 'bad' && e.reason === 'contribution',
          );
          assert.equal(q.offences, 1);
          assert.ok(Number(q.quarantine_ms) > 0);
          assert.ok(
            Number(
              await scrape(metricsPort, 'lora_mpt_refused_contributions_total', {
                kind: String(first.kind),
              }),
            ) >= 1,
          );
          assert.ok(
            Number(await scrape(metricsPort, 'lora_mpt_quarantines_total', { reason: 'contribution' })) >= 1,
          );
        } else {
          assert.match(String(first.why), /not finite/);
          assert.ok(
            Number(await scrape(metricsPort, 'lora_mpt_refused_results_total', { outcome: 'reset' })) >= 1,
          );
        }
        assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
        assertLedgersWhole(stepRecords(out), 4);
        const honest = d.coordinator
          .events()
          .filter((e) => /^(contribution|result)_refused$/.test(e.event) && e.worker !== 'bad');
        assert.deepEqual(honest, [], 'no honest worker is refused');
        // Which defence caught it, each time (flip_bits: either), for the report.
        const caught = d.coordinator
          .events()
          .filter((e) => /^(contribution|result)_refused$/.test(e.event) && e.worker === 'bad')
          .map((e) => `${e.event}${e.kind === undefined ? '' : `:${String(e.kind)}`}`);
        t.diagnostic(`${c.fault}: ${caught.join(', ')}`);
      } finally {
        await d.stop();
      }
      await assertSameAdapter(reference, out, 1e-5);
    });
  }
});

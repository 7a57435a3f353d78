import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import {
  assertLedgersWhole,
  faultTraining,
  recovery,
  splitByWorker,
  stepRecords,
  writeReference,
} from '../support/fault-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

// Real processes: a worker computes on a worker_thread, so its heartbeats flow during a micro-batch
// far longer than the heartbeat deadline, while a worker whose process hangs is still lost at that
// short deadline (docs/security.md, "Compute off the event loop").
describe('compute off the event loop', () => {
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

  it('keeps a worker whose micro-batch outlasts the heartbeat deadline 5x, and loses a hung one at it', async (t) => {
    const out = join(run.dir, 'long');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 2,
      coordinatorFlags: ['--heartbeat_timeout_ms', '1500'],
    });
    // Its first micro-batch holds its compute thread for 7.5 s, as a long device call would.
    const long = d.startWorker('long', ['--inject_fault', 'block_compute_ms=7500']);
    await long.waitForEvent('replica_synced', undefined, { ms: 120_000 });
    // This one's whole process stops answering after 2 micro-batches (no heartbeats, no pings).
    const hung = d.startWorker('hung', ['--inject_fault', 'stall_after_microbatches=2']);
    const w0 = d.startWorker('w0');
    try {
      const stalled = await hung.waitForEvent('fault_injected', (e) => e.fault === 'stall', { ms: 120_000 });
      const t0 = Date.now();
      const lost = await d.coordinator.waitForEvent('worker_lost', (e) => e.worker === 'hung');
      // Lost at the short deadline either way: silent for it, or holding micro-batches dealt before
      // it went silent for longer than the deadline (the micro-batch deadline's floor is the
      // heartbeat deadline; which check of the same tick fires first depends on when they were dealt).
      assert.match(
        String(lost.why),
        /^(no message for 1500 ms|micro-batches [\d, ]+ not reported within 1500 ms)$/,
      );
      recovery(t, `hung worker (stalled at ${stalled.time}) -> lost`, t0);
      await hung.kill();
      for (const p of [d.coordinator, long, w0])
        assert.equal(await p.exited(), 0, `${p.name}:\n${p.output()}`);
      assert.ok(
        !d.coordinator.events().some((e) => e.event === 'worker_lost' && e.worker === 'long'),
        'the worker computing a long micro-batch was never lost: its heartbeats flowed',
      );
      const records = stepRecords(out);
      assertLedgersWhole(records, 4);
      assert.ok((splitByWorker(records).get('long') ?? 0) > 0, 'its long micro-batch counted');
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });
});

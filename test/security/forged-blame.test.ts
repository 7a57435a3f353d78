import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { assertLedgersWhole, faultTraining, stepRecords, writeReference } from '../support/fault-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

// Real processes (issue #23, found 1): a member that blames every other member under an invented
// generation (900010) got both honest workers dropped within 0.8 s and paused the run forever. A
// blame is acted on only with evidence the coordinator can check; the false accuser pays.
describe('a forged blame', () => {
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

  it('costs the accuser its place, leaves the honest workers training, and the adapter equal to finetune', async () => {
    const out = join(run.dir, 'forged-blame');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 2,
    });
    const insider = d.startWorker('x', ['--inject_fault', 'forge_blame=900010']);
    const a = d.startWorker('a');
    const b = d.startWorker('b');
    try {
      await insider.waitForEvent('fault_injected', (e) => e.fault === 'forge_blame', { ms: 120_000 });
      assert.equal(await insider.exited(), 3, `the false accuser is dropped:\n${insider.output()}`);
      for (const p of [d.coordinator, a, b]) assert.equal(await p.exited(), 0, `${p.name}:\n${p.output()}`);
      const refused = d.coordinator.events().filter((e) => e.event === 'result_refused');
      assert.deepEqual([...new Set(refused.map((e) => e.worker))], ['x'], 'only the accuser paid');
      assert.ok(refused.every((e) => /falsely: generation 9000\d\d was never opened/.test(String(e.why))));
      assert.ok(
        !d.coordinator
          .events()
          .some((e) => e.event === 'worker_lost' && (e.worker === 'a' || e.worker === 'b')),
      );
      assertLedgersWhole(stepRecords(out), 4);
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });
});

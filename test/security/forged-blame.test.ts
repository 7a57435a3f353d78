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
    // Honest workers slowed a little, so that on a loaded machine the run lasts long enough for the
    // reset accuser to rejoin and offend a second time (it is dropped then, exit 3).
    const a = d.startWorker('a', ['--inject_fault', 'slow_ms=300']);
    const b = d.startWorker('b', ['--inject_fault', 'slow_ms=300']);
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

  // The other side of the same policy: a member whose device puts NaN in the frames it signs (its
  // results look normal) is named by a receiver holding such a frame; the coordinator checks the
  // signature, MAC and round and refuses it as for an offence it saw itself. The accusers pay nothing.
  it('with a frame its accused signed, removes the accused and leaves the adapter equal to finetune', async () => {
    const out = join(run.dir, 'proven-blame');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 2,
    });
    const bad = d.startWorker('x', ['--inject_fault', 'nonfinite_frames=1']);
    // Slow enough that steps remain when x, reset, comes back to offend a second time.
    const a = d.startWorker('a', ['--inject_fault', 'slow_ms=300']);
    const b = d.startWorker('b', ['--inject_fault', 'slow_ms=300']);
    try {
      assert.equal(await bad.exited(), 3, `the signer of NaN frames is dropped:\n${bad.output()}`);
      for (const p of [d.coordinator, a, b]) assert.equal(await p.exited(), 0, `${p.name}:\n${p.output()}`);
      const events = d.coordinator.events();
      const refused = events.filter((e) => e.event === 'result_refused');
      assert.deepEqual([...new Set(refused.map((e) => e.worker))], ['x'], 'only the signer paid');
      assert.deepEqual(
        refused.map((e) => [e.offences, e.dropped]),
        [
          [1, false],
          [2, true],
        ],
      );
      // At least one refusal rests on a receiver's evidence (the coordinator's own observer may see
      // x's NaN gather frames first in a round: the same offence, counted once per round).
      const proven = refused.filter((e) =>
        /signed a frame with non-finite values.*shown by [ab]/.test(String(e.why)),
      );
      assert.ok(proven.length >= 1, refused.map((e) => e.why).join('\n'));
      assert.ok(
        events.some((e) => e.event === 'frame_evidence' && e.accused === 'x' && e.reason === 'nonfinite'),
      );
      assert.ok(!events.some((e) => e.event === 'blame_ignored'), 'every blame of x was proven or observed');
      assert.ok(!events.some((e) => e.event === 'worker_lost' && (e.worker === 'a' || e.worker === 'b')));
      assertLedgersWhole(stepRecords(out), 4);
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });
});

import assert from 'node:assert/strict';
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import {
  assertLedgersWhole,
  faultTraining,
  recovery,
  stepRecords,
  writeReference,
} from '../support/fault-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

// The coordinator and the NATS server fail under a running job; workers and the run carry on.
describe('coordinator and NATS faults', () => {
  let run: TinyRun;
  let nats: NatsServer;
  let reference: string;
  before(async () => {
    run = await tinyRun([200, 320]);
    nats = await startNats({ maxPayload: 64 * 1024, prefer: 'process' });
    reference = await writeReference(run);
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  it('resumes from the last checkpoint when the coordinator is killed; workers reconnect', async (t) => {
    const out = join(run.dir, 'coordinator-restart');
    let newest = '';
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: ['w0', 'w1'],
      minWorkers: 2,
    });
    try {
      await d.coordinator.waitForEvent('checkpoint_saved', (e) => /checkpoint-2$/.test(String(e.path)), {
        ms: 120_000,
      });
      const t0 = Date.now();
      await d.coordinator.kill('SIGKILL');
      // Keep the newest checkpoint as it was at the kill, for a separate resumed run to compare with.
      newest = readdirSync(out)
        .filter((n) => /^checkpoint-\d+$/.test(n))
        .sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1]))
        .at(-1)!;
      cpSync(join(out, newest), join(run.dir, 'from-checkpoint', newest), { recursive: true });
      // Same flags and address: it finds checkpoint-2 (or a later one) in --output_dir by itself.
      const again = startLoraMpt('coordinator-2', [
        'coordinator',
        ...faultTraining(run, out),
        '--listen',
        `127.0.0.1:${d.grpcPort}`,
        '--nats',
        nats.url,
        '--metrics_port',
        '0',
        '--min_workers',
        '2',
        '--insecure',
      ]);
      try {
        const m = await again.waitForEvent('run_resumed', undefined, { ms: 120_000 });
        const dir = /checkpoint-(\d+)$/.exec(String(m.from));
        assert.equal(Number(dir?.[1]), m.step);
        assert.equal(`checkpoint-${dir?.[1]}`, newest, 'it resumed from the newest checkpoint');
        for (const w of d.workers) await w.waitForEvent('reconnecting');
        await again.waitForEvent('step_committed', (e) => e.step === m.step! + 1, { ms: 120_000 });
        recovery(t, `coordinator SIGKILLed -> restarted one committed step ${m.step! + 1}`, t0);
        assert.equal(await again.exited(), 0, again.output());
        for (const w of d.workers) {
          assert.equal(await w.exited(), 0, w.output());
          assert.equal(
            w.events().filter((e) => e.event === 'session_joined').length,
            2,
            'welcomed by both coordinators',
          );
        }
      } finally {
        await again.kill();
      }
      // The records of the steps the first coordinator committed after its checkpoint are
      // recomputed: the log holds them twice, and the last occurrence of each step counts.
      const last = new Map(stepRecords(out).map((r) => [r.step, r]));
      assertLedgersWhole(
        [...last.values()].sort((a, b) => a.step - b.step),
        4,
      );
    } finally {
      await d.stop();
    }
    // Equal to a single-process run resumed from the same checkpoint ...
    const resumedOut = join(run.dir, 'from-checkpoint');
    const resumed = startLoraMpt('finetune (resumed)', [
      'finetune',
      ...faultTraining(run, resumedOut),
      '--resume_from_checkpoint',
      join(resumedOut, newest),
    ]);
    assert.equal(await resumed.exited(), 0, resumed.output());
    await assertSameAdapter(resumedOut, out, 1e-5);
    // ... and, as the checkpoint holds the full state (adapter, moments, step, data cursor), to the
    // run that never stopped.
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('finishes correctly when nats-server is restarted during an all-reduce', async (t) => {
    const out = join(run.dir, 'nats-restart');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: ['w0'],
      minWorkers: 2,
    });
    // w1 holds back from an all-reduce for 3 s: the round is in flight while NATS goes away.
    const w1 = d.startWorker('w1', ['--inject_fault', 'delay_reduce=1:3000']);
    try {
      const m = await w1.waitForEvent('fault_injected', (e) => e.fault === 'delay_reduce', { ms: 120_000 });
      const t0 = Date.now();
      await nats.restart();
      await d.coordinator.waitForEvent(
        'reduce_aborted',
        (e) => e.step === m.step && e.generation === m.generation,
      );
      await d.coordinator.waitForEvent('step_committed', (e) => e.step === m.step! + 1, { ms: 120_000 });
      recovery(t, 'nats-server restarted -> the step in flight committed', t0);
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      for (const w of d.workers) assert.equal(await w.exited(), 0, w.output());
      const records = stepRecords(out);
      assertLedgersWhole(records, 4);
      assert.ok(records[m.step!]!.generation > m.generation!, 'committed under a later generation');
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });
});

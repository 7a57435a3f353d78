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
import type { LoraProcess } from '../support/processes.ts';
import { scrapeValue } from '../support/scrape.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

// Real processes (coordinator, workers, nats-server), real SIGKILLs. Every run must end with the
// fault-free adapter (single-process finetune) within 1e-5 and a whole ledger for every step.
describe('worker faults', () => {
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

  const exitsCleanly = async (...ps: LoraProcess[]) => {
    for (const p of ps) assert.equal(await p.exited(), 0, `${p.name}:\n${p.output()}`);
  };

  it('requeues what a worker killed mid-step computed and held; the survivors finish the step', async (t) => {
    const out = join(run.dir, 'kill-mid-step');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 2,
    });
    // w2 reports 3 micro-batches, then hangs holding the next one; it is killed there.
    const victim = d.startWorker('w2', ['--inject_fault', 'stall_after_microbatches=3']);
    // It is a replica before the others start, so it surely takes part in the run.
    await victim.waitForEvent('replica_synced', undefined, { ms: 120_000 });
    const [w0, w1] = [d.startWorker('w0'), d.startWorker('w1')];
    try {
      await victim.waitForEvent('fault_injected', (e) => e.fault === 'stall' && e.micro_batches === 3, {
        ms: 120_000,
      });
      const t0 = Date.now();
      await victim.kill('SIGKILL');
      const m = await d.coordinator.waitForEvent('microbatches_requeued', (e) => e.worker === 'w2');
      const [ids, stepIndex, computed] = [m.micro_batches as number[], m.step!, m.computed as number[]];
      // Counted before the event was emitted: the coordinator's /metrics says so now.
      const port = Number(d.coordinator.events().find((e) => e.event === 'run_started')!.metrics_port);
      assert.equal(await scrapeValue(port, 'lora_mpt_workers_lost_total'), 1);
      const requeued = await scrapeValue(port, 'lora_mpt_microbatches_total', { event: 'requeued' });
      assert.ok(requeued! >= ids.length, `lora_mpt_microbatches_total{event="requeued"} ${requeued}`);
      assert.ok(computed.length > 0, 'the victim had reported micro-batches of the step it died in');
      await d.coordinator.waitForEvent('step_committed', (e) => e.step === stepIndex + 1);
      recovery(t, 'worker SIGKILLed mid-step -> its step committed', t0);
      await exitsCleanly(d.coordinator, w0, w1);
      const records = stepRecords(out);
      assertLedgersWhole(records, 4);
      const hit = records.find((r) => r.step === stepIndex + 1)!;
      // Workers may also give back queued micro-batches to an idle one (revokes), the victim too
      // while its compute hangs and its stream still answers: the victim's entries are exactly the
      // micro-batches requeued when it was lost plus those it gave back in that step.
      const revoked = d.coordinator
        .events()
        .filter((e) => e.event === 'microbatches_revoked' && e.worker === 'w2' && e.step === stepIndex)
        .flatMap((e) => e.micro_batches as number[]);
      assert.deepEqual(
        hit.ledger_requeued
          .split(' ')
          .filter((x) => x.endsWith('@w2'))
          .map((x) => Number(x.split('@')[0]))
          .sort((a, b) => a - b),
        [...ids, ...revoked].sort((a, b) => a - b),
        `the ledger of that step lists exactly the requeued micro-batches (${ids}) and those revoked from w2 (${revoked})`,
      );
      assert.ok(hit.microbatches_requeued >= ids.length);
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('retries a step under a new generation when a member is killed during the all-reduce', async (t) => {
    const out = join(run.dir, 'kill-in-reduce');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 2,
    });
    // w2 hangs before sending its part of its first all-reduce from step index 1 on; killed there.
    const victim = d.startWorker('w2', ['--inject_fault', 'delay_reduce=1:600000']);
    // It is a replica before the others start, so it surely takes part in the run.
    await victim.waitForEvent('replica_synced', undefined, { ms: 120_000 });
    const [w0, w1] = [d.startWorker('w0'), d.startWorker('w1')];
    try {
      const m = await victim.waitForEvent('fault_injected', (e) => e.fault === 'delay_reduce', {
        ms: 120_000,
      });
      const [step, generation] = [m.step!, m.generation!];
      const t0 = Date.now();
      await victim.kill('SIGKILL');
      const aborted = await d.coordinator.waitForEvent(
        'reduce_aborted',
        (e) => e.step === step && e.generation === generation && e.reason === 'member w2 was lost',
      );
      await d.coordinator.waitForEvent('step_committed', (e) => e.step === step + 1);
      recovery(t, 'member SIGKILLed in the all-reduce -> step committed under a new generation', t0);
      await exitsCleanly(d.coordinator, w0, w1);
      // Every survivor that was a member of the aborted round left it (one that became a replica
      // during the round was not in it, and joins the retry).
      const members = aborted.members as string[];
      assert.ok(members.includes('w2') && members.length >= 2, `members ${members.join(', ')}`);
      for (const w of [w0, w1].filter((x) => members.includes(x.name))) {
        assert.ok(
          w
            .events()
            .some((e) => e.event === 'reduce_aborted' && e.step === step && e.generation === generation),
          `${w.name} left the aborted round`,
        );
      }
      const records = stepRecords(out);
      assertLedgersWhole(records, 4);
      assert.ok(records[step]!.generation > generation, 'the step committed under a later generation');
      // Survivors applied nothing of the aborted round: their replicas still agree with the coordinator.
      assert.ok(
        !d.coordinator.events().some((e) => /replica state differs/.test(String(e.reason))),
        'no replica diverged',
      );
      assert.equal(records.at(-1)!.replica_mismatches, 0);
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('gives a worker that joins mid-run the current state and work from the next step', async (t) => {
    const out = join(run.dir, 'join');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: ['w0'],
      minWorkers: 1,
      // Slow enough that the run is still going when the late worker has loaded its model.
      workerFlags: ['--inject_fault', 'slow_ms=500'],
    });
    try {
      await d.coordinator.waitForEvent('step_committed', (e) => e.step === 1, { ms: 120_000 });
      const t0 = Date.now();
      const late = d.startWorker('late');
      const from = (await late.waitForEvent('replica_synced', undefined, { ms: 120_000 })).step!;
      assert.ok(from >= 1, 'it joined after step 1 was committed');
      await d.coordinator.waitForEvent('step_committed', (e) => 'late' in (e.micro_batches as object));
      recovery(t, 'late worker started -> first step it computed committed', t0);
      await exitsCleanly(d.coordinator, d.workers[0]!, late);
      const records = stepRecords(out);
      assertLedgersWhole(records, 4);
      const withLate = records.filter((r) => /late:/.test(r.micro_batches_by_worker));
      assert.ok(withLate.length > 0, 'the late worker computed micro-batches');
      assert.ok(
        withLate.every((r) => r.step > from),
        'only in steps after the state it received',
      );
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('lets fast workers take more micro-batches than a straggler, and revokes what it queued', async (t) => {
    const out = join(run.dir, 'straggler');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: ['w0', 'w1'],
      minWorkers: 3,
    });
    const slow = d.startWorker('slow', ['--inject_fault', 'slow_ms=1500']);
    try {
      await exitsCleanly(d.coordinator, d.workers[0]!, d.workers[1]!, slow);
      const records = stepRecords(out);
      assertLedgersWhole(records, 4);
      const split = splitByWorker(records);
      t.diagnostic(`micro-batches per worker over the run: ${JSON.stringify(Object.fromEntries(split))}`);
      assert.ok(
        (split.get('slow') ?? 0) < Math.min(split.get('w0')!, split.get('w1')!),
        `split ${JSON.stringify([...split])}`,
      );
      // At a step's tail the idle fast workers take what the straggler held but had not started.
      assert.ok(
        d.coordinator.events().some((e) => e.event === 'microbatches_revoked' && e.worker === 'slow'),
        'micro-batches the straggler had queued were revoked',
      );
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('treats a worker whose micro-batch is not reported within --microbatch_timeout_ms as lost', async (t) => {
    const out = join(run.dir, 'microbatch-deadline');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 2,
      coordinatorFlags: ['--microbatch_timeout_ms', '2000', '--heartbeat_timeout_ms', '4000'],
    });
    // Alive (heartbeats flow while it waits) but 3 s per micro-batch: past the deadline every time.
    const slow = d.startWorker('slow', ['--inject_fault', 'slow_ms=3000']);
    // It is a replica before the others start, so it surely takes part in the run.
    await slow.waitForEvent('replica_synced', undefined, { ms: 120_000 });
    const [w0, w1] = [d.startWorker('w0'), d.startWorker('w1')];
    try {
      const before = d.coordinator.events().length;
      // The run starts (micro-batches are dealt) once a second replica is synced.
      await Promise.race([
        w0.waitForEvent('replica_synced', undefined, { ms: 120_000 }),
        w1.waitForEvent('replica_synced', undefined, { ms: 120_000 }),
      ]);
      const t0 = Date.now();
      await d.coordinator.waitForEvent(
        'worker_lost',
        (e) =>
          e.worker === 'slow' && /^micro-batches [\d, ]+ not reported within 2000 ms$/.test(String(e.why)),
        { from: before },
      );
      recovery(t, 'run started -> the slow worker declared lost (2000 ms deadline)', t0);
      await exitsCleanly(d.coordinator, w0, w1);
      assertLedgersWhole(stepRecords(out), 4);
      // The dropped worker was not refused: it reconnects with backoff to be re-synced.
      await slow.waitForEvent('reconnecting');
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('treats a worker that stops answering past --heartbeat_timeout_ms as lost', async (t) => {
    const out = join(run.dir, 'stall');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 2,
      coordinatorFlags: ['--heartbeat_timeout_ms', '3000'],
    });
    const hung = d.startWorker('hung', ['--inject_fault', 'stall_after_microbatches=2']);
    // It is a replica before the others start, so it surely takes part in the run.
    await hung.waitForEvent('replica_synced', undefined, { ms: 120_000 });
    const [w0, w1] = [d.startWorker('w0'), d.startWorker('w1')];
    try {
      await hung.waitForEvent('fault_injected', (e) => e.fault === 'stall' && e.micro_batches === 2, {
        ms: 120_000,
      });
      const t0 = Date.now();
      await d.coordinator.waitForEvent(
        'worker_lost',
        (e) => e.worker === 'hung' && e.why === 'no message for 3000 ms',
      );
      recovery(t, 'worker stopped answering -> declared lost (3000 ms deadline)', t0);
      await exitsCleanly(d.coordinator, w0, w1);
      assertLedgersWhole(stepRecords(out), 4);
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('detects a corrupted replica by checksum, counts it and repairs it', async (t) => {
    const out = join(run.dir, 'diverged');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: ['w0'],
      minWorkers: 2,
    });
    const bad = d.startWorker('bad', ['--inject_fault', 'corrupt_replica_after_step=0']);
    try {
      const m = await bad.waitForEvent('fault_injected', (e) => e.fault === 'corrupt_replica', {
        ms: 120_000,
      });
      const t0 = Date.now();
      await d.coordinator.waitForEvent(
        'reduce_aborted',
        (e) => e.reason === "replica state differs from the coordinator's on bad",
      );
      await d.coordinator.waitForEvent('state_resent', (e) => e.worker === 'bad');
      const port = Number(d.coordinator.events().find((e) => e.event === 'run_started')!.metrics_port);
      assert.equal(await scrapeValue(port, 'lora_mpt_replica_mismatches_total'), 1, 'counted on /metrics');
      await d.coordinator.waitForEvent('step_committed', (e) => e.step === m.step! + 2);
      recovery(t, 'replica corrupted -> detected, re-synced and step committed', t0);
      await exitsCleanly(d.coordinator, d.workers[0]!, bad);
      const records = stepRecords(out);
      assertLedgersWhole(records, 4);
      assert.equal(records.at(-1)!.replica_mismatches, 1, 'lora_mpt_replica_mismatches_total');
      assert.equal(records[0]!.replica_mismatches, 0);
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('pauses below --min_workers, says why, and resumes when a worker comes back', async (t) => {
    const out = join(run.dir, 'min-workers');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: ['w0', 'w1'],
      minWorkers: 2,
    });
    try {
      await d.coordinator.waitForEvent('step_committed', (e) => e.step === 1, { ms: 120_000 });
      const before = d.coordinator.events().length;
      await d.workers[1]!.kill('SIGKILL');
      await d.coordinator.waitForEvent('run_paused', (e) => e.workers === 1 && e.min_workers === 2, {
        from: before,
      });
      const paused = d.coordinator.events().length;
      const t0 = Date.now();
      const back = d.startWorker('w2');
      const resumed = await d.coordinator.waitForEvent('run_unpaused', (e) => e.workers === 2, {
        ms: 120_000,
        from: paused,
      });
      const between = d.coordinator.events().slice(paused, d.coordinator.events().indexOf(resumed));
      assert.ok(!between.some((e) => e.event === 'step_committed'), 'no step commits while paused');
      recovery(t, 'replacement worker started -> run resumed', t0);
      await exitsCleanly(d.coordinator, d.workers[0]!, back);
      assertLedgersWhole(stepRecords(out), 4);
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });
});

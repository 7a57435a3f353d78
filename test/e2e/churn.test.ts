import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mptConfigJson } from '../../src/families/mpt/random-checkpoint.ts';
import { assertSameAdapter } from '../support/adapters.ts';
import { assertLedgersWhole, recovery, splitByWorker, stepRecords } from '../support/fault-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { type LoraEvent, type LoraProcess, startLoraMpt } from '../support/processes.ts';
import { runArgs, SHARED_TOKENIZER, type TinyRun, tinyRun } from '../support/tiny-run.ts';
import { startWorkerPool } from '../support/worker-pool.ts';

// Churn at scale (issue #21), CI-sized: 20 synthetic workers (18 sessions in one process, 2 in
// processes of their own) train while 2 of them (10%) are SIGKILLed, 2 new ones join, the NATS
// server restarts once and the coordinator is SIGKILLed and restarted once. The adapter must equal
// the fault-free run's and every micro-batch must be counted once. Each micro-batch takes a modelled
// several hundred ms, so the faults land inside running steps. LORA_MPT_CHURN_WORKERS=64 runs the
// issue's size (6 killed, 8 joining); a step has 4 micro-batches more than there are workers.
const WORKERS = Number(process.env.LORA_MPT_CHURN_WORKERS ?? 20);
const KILLED = Math.max(1, Math.round(WORKERS / 10));
const POOL = WORKERS - KILLED;
const JOINING = Math.max(2, Math.floor(WORKERS / 8));
const STEPS = 12;
const MICRO_BATCHES = WORKERS + 4;
const killedIds = Array.from({ length: KILLED }, (_, i) => `k${i}`);
const joinerIds = Array.from({ length: JOINING }, (_, i) => `n${i}`);
const SYNTHETIC = [
  '--backend',
  'synthetic',
  '--gpu_profile',
  't4',
  '--peak_tflops',
  '0.005',
  '--gpu_mfu',
  '0.5',
];

const training = (model: string, run: TinyRun, out: string) =>
  runArgs({ model, data: run.data }, out, {
    tokenizer: SHARED_TOKENIZER,
    batch_size: 2 * MICRO_BATCHES,
    micro_batch_size: 2,
    max_steps: STEPS,
    cutoff_len: 48,
    val_set_size: 6,
    eval_steps: 6,
    save_steps: 1,
    warmup_steps: 1,
    learning_rate: '1e-2',
    group_by_length: true,
  });

const ms = (e: LoraEvent) => Date.parse(String(e.time));

describe(`churn at scale: ${WORKERS} synthetic workers`, () => {
  let run: TinyRun;
  let nats: NatsServer;
  let model: string;
  let reference: string;
  before(async () => {
    run = await tinyRun([0, 2 * MICRO_BATCHES * STEPS + 40]);
    const dir = join(run.dir, 'config-only');
    mkdirSync(dir);
    const config = mptConfigJson({ dModel: 64, nHeads: 4, nLayers: 2, vocabSize: 50432, maxSeqLen: 256 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    model = `synthetic:${join(dir, 'config.json')}`;
    nats = await startNats({ maxPayload: 64 * 1024, prefer: 'process' });
    reference = join(run.dir, 'reference');
    const ft = startLoraMpt('finetune', [
      'finetune',
      ...training(model, run, reference),
      '--backend',
      'synthetic',
      '--gpu_profile',
      'none',
    ]);
    assert.equal(await ft.exited(), 0, ft.output());
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  it('ends with the fault-free adapter, each micro-batch counted once, through kills, joins and restarts', async (t) => {
    const out = join(run.dir, 'churn');
    const coordinatorArgs = (listen: string) => [
      'coordinator',
      ...training(model, run, out),
      '--listen',
      listen,
      '--nats',
      nats.url,
      '--metrics_port',
      '0',
      '--min_workers',
      String(WORKERS - KILLED - 2),
      '--insecure',
      '--log_level',
      'debug',
    ];
    const first = startLoraMpt('coordinator', coordinatorArgs('127.0.0.1:0'));
    const port = Number((await first.waitForEvent('run_started', undefined, { ms: 120_000 })).grpc_port);
    const flags = [
      '--coordinator',
      `127.0.0.1:${port}`,
      '--nats',
      nats.url,
      '--metrics_port',
      '0',
      '--insecure',
      ...SYNTHETIC,
    ];
    const started: LoraProcess[] = [first];
    const single = (id: string) => startLoraMpt(id, ['worker', ...flags, '--worker_id', id]);
    let second: LoraProcess | undefined;
    try {
      const pool = startWorkerPool('pool', POOL, 'p', flags);
      const doomed = killedIds.map(single);
      started.push(pool, ...doomed);
      // All of them are replicas before the faults begin.
      for (const id of [...killedIds, ...Array.from({ length: POOL }, (_, i) => `p${i}`)])
        await first.waitForEvent('worker_synced', (e) => e.worker === id, { ms: 180_000 });
      // The number of steps committed so far, read once (before waiting for a later one).
      const committed = (c: LoraProcess) => c.events().filter((e) => e.event === 'step_committed').length;
      const beforeKill = committed(first);
      await first.waitForEvent('step_committed', (e) => e.step! > beforeKill, { ms: 120_000 });

      // 10% of the workers killed mid-step, new ones joining.
      let t0 = Date.now();
      for (const k of doomed) await k.kill('SIGKILL');
      const joiners = startWorkerPool('joiners', JOINING, 'n', flags);
      started.push(joiners);
      for (const id of killedIds) await first.waitForEvent('worker_lost', (e) => e.worker === id);
      for (const id of joinerIds)
        await first.waitForEvent('worker_synced', (e) => e.worker === id, { ms: 180_000 });
      const afterJoin = committed(first);
      await first.waitForEvent('step_committed', (e) => e.step! > afterJoin, { ms: 120_000 });
      recovery(t, `${KILLED} of ${WORKERS} SIGKILLed, ${JOINING} joined -> all synced, a step committed`, t0);

      // One NATS restart: the all-reduce in flight (if any) is retried.
      t0 = Date.now();
      await nats.restart();
      const afterNats = committed(first);
      await first.waitForEvent('step_committed', (e) => e.step! > afterNats, { ms: 120_000 });
      recovery(t, 'nats-server restarted -> a step committed', t0);

      // One coordinator SIGKILL, restarted on the same port: it resumes from its newest checkpoint.
      const saved = await first.waitForEvent('checkpoint_saved', (e) => e.step! > afterNats + 1, {
        ms: 120_000,
      });
      assert.ok(saved.step! < STEPS, 'the run is still going when the coordinator is killed');
      t0 = Date.now();
      await first.kill('SIGKILL');
      second = startLoraMpt('coordinator-2', coordinatorArgs(`127.0.0.1:${port}`));
      started.push(second);
      const resumed = await second.waitForEvent('run_resumed', undefined, { ms: 120_000 });
      await second.waitForEvent('step_committed', (e) => e.step === resumed.step! + 1, { ms: 180_000 });
      recovery(t, `coordinator SIGKILLed -> restarted, resumed at step ${resumed.step}, committed one`, t0);
      assert.equal(await second.exited(), 0, second.output().slice(-4000));
      assert.equal(await pool.exited(), 0, pool.output().slice(-4000));
      assert.equal(await joiners.exited(), 0, joiners.output().slice(-4000));

      // Every micro-batch counted once: the last record of each step (steps the first coordinator
      // committed after its newest checkpoint were redone by the second) has a whole ledger.
      const last = new Map(stepRecords(out).map((r) => [r.step, r]));
      const records = [...last.values()].sort((a, b) => a.step - b.step);
      assertLedgersWhole(records, STEPS);
      for (const r of records) {
        assert.equal(r.ledger_planned, MICRO_BATCHES);
        const split = splitByWorker([r]);
        assert.equal(
          [...split.values()].reduce((a, b) => a + b, 0),
          MICRO_BATCHES,
          `step ${r.step} split`,
        );
      }
      const byWorker = splitByWorker(records);
      for (const id of joinerIds) assert.ok((byWorker.get(id) ?? 0) > 0, `${id} computed micro-batches`);

      // A joiner is a member of no all-reduce begun before its state was synced, and of the first one
      // after: it is used from the step its state is from (the next step boundary at the latest).
      for (const c of [first, second]) {
        const ev = c.events();
        const rounds = ev.filter((e) => e.event === 'reduce_started');
        for (const id of joinerIds) {
          const synced = ev.find((e) => e.event === 'worker_synced' && e.worker === id);
          assert.ok(synced, `${id} was synced by ${c.name}`);
          const has = (e: LoraEvent) => (e.members as string[]).includes(id);
          const before = rounds.filter((e) => ms(e) < ms(synced));
          assert.deepEqual(before.filter(has), [], `${id} in no round begun before it synced`);
          const next = rounds.find((e) => ms(e) >= ms(synced));
          assert.ok(next && has(next), `${id} is a member of the first round after it synced`);
          assert.equal(next.step, synced.step, `${id} is used in the step its state is from`);
          for (const e of ev.filter((x) => x.event === 'microbatch_completed' && x.worker === id))
            assert.ok(ms(e) >= ms(synced), `${id} computed nothing before it was a replica`);
        }
      }
      const lost = first
        .events()
        .filter((e) => e.event === 'worker_lost')
        .map((e) => e.worker);
      for (const id of killedIds) assert.ok(lost.includes(id), `${id}'s loss was noticed`);
      t.diagnostic(
        `micro-batches by worker: ${[...byWorker].map(([w, n]) => `${w}:${n}`).join(' ')}; ` +
          `steps with requeued micro-batches: ${records
            .filter((r) => r.ledger_requeued !== '')
            .map((r) => r.step)
            .join(' ')}`,
      );
    } finally {
      await Promise.all(started.map((p) => p.kill()));
    }
    const diff = await assertSameAdapter(reference, out, 1e-5);
    t.diagnostic(`largest per-tensor ||a-b||/||a||: ${diff.relative.toExponential(2)}`);
  });
});

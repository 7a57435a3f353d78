import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_WORKER_ROWS } from '../../src/coordinator/run-status.ts';
import { mptConfigJson } from '../../src/families/mpt/random-checkpoint.ts';
import { assertSameAdapter } from '../support/adapters.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { type Observation, startSyntheticCluster } from '../support/synthetic-cluster.ts';
import { runArgs, SHARED_TOKENIZER, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// The short version of the cluster bench (bench/cluster.ts, docs/scale.md): a real coordinator
// process, 8 and then 32 synthetic worker sessions (16 to a process, each its own gRPC stream and NATS
// connection), a real nats-server, a config.json-only model. The run must end with finetune's
// adapter, count every micro-batch once, and the coordinator's /metrics and /api/status must not grow
// with the number of workers.
const WORKERS = [8, 32];

const training = (model: string, run: TinyRun, out: string) =>
  runArgs({ model, data: run.data }, out, {
    tokenizer: SHARED_TOKENIZER,
    batch_size: 128,
    micro_batch_size: 2,
    max_steps: 3,
    cutoff_len: 48,
    val_set_size: 0,
    save_steps: 3,
    warmup_steps: 1,
    learning_rate: '1e-2',
    group_by_length: true,
    lora_target_modules: '[Wqkv,out_proj]',
  });

/** The coordinator's record of each committed step (metrics.jsonl): its ledger and work split. */
function committedSteps(out: string): Record<string, unknown>[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"ledger_planned"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('a synthetic cluster of 8 and 32 workers', () => {
  let run: TinyRun;
  let nats: NatsServer;
  let model: string;
  const seen = new Map<number, Observation[]>();
  before(async () => {
    run = await tinyRun([0, 400]);
    const dir = join(run.dir, 'config-only');
    mkdirSync(dir);
    const config = mptConfigJson({ dModel: 64, nHeads: 4, nLayers: 2, vocabSize: 50432, maxSeqLen: 2048 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    model = `synthetic:${join(dir, 'config.json')}`;
    nats = await startNats({ prefer: 'process' });
    const ft = startLoraMpt('finetune', [
      'finetune',
      ...training(model, run, join(run.dir, 'finetune')),
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

  for (const n of WORKERS) {
    it(`${n} workers: the run completes with finetune's adapter (1e-5), every micro-batch counted once`, async (t) => {
      const out = join(run.dir, `cluster-${n}`);
      const cluster = await startSyntheticCluster({
        workers: n,
        perProcess: 16,
        natsUrl: nats.url,
        gpuProfile: 'none',
        trainingFlags: training(model, run, out),
        pollMs: 250,
      });
      try {
        const codes = await cluster.finished();
        assert.deepEqual(
          codes,
          codes.map(() => 0),
          `${cluster.coordinator.output().slice(-3000)}\n${cluster.pools.map((p) => p.output().slice(-1000)).join('\n')}`,
        );
      } finally {
        await cluster.stop();
      }
      const steps = committedSteps(out);
      assert.deepEqual(
        steps.map((s) => s.step),
        [1, 2, 3],
      );
      const workers = new Set<string>();
      for (const s of steps) {
        // 128 rows in micro-batches of 2: 64 planned, each counted exactly once (the ledger's audit).
        assert.equal(s.ledger_planned, 64);
        assert.equal(s.ledger_counted, 64);
        const split = String(s.micro_batches_by_worker)
          .split(' ')
          .map((x) => x.split(':') as [string, string]);
        assert.equal(
          split.reduce((a, [, k]) => a + Number(k), 0),
          64,
        );
        for (const [w] of split) workers.add(w);
      }
      assert.ok(workers.size > n / 2, `${workers.size} of ${n} workers computed micro-batches`);
      for (const w of workers) assert.match(w, /^w\d{3}$/);
      const diff = await assertSameAdapter(join(run.dir, 'finetune'), out, 1e-5);
      t.diagnostic(`largest per-tensor ||a-b||/||a||: ${diff.relative.toExponential(2)}`);
      assert.ok(cluster.observations.length > 0, 'the coordinator was observed while it ran');
      seen.set(n, cluster.observations);
    });
  }

  it('keeps /metrics series and /api/status size independent of the worker count (8 vs 32)', (t) => {
    const [few, many] = WORKERS.map((n) => seen.get(n));
    assert.ok(few && many, 'both runs were observed');
    const most = (o: Observation[], k: 'metricsSeries' | 'statusBytes') => Math.max(...o.map((x) => x[k]));
    // Nothing on the coordinator is labelled per worker.
    for (const o of [...few, ...many])
      for (const k of o.seriesKeys) assert.ok(!/="w\d{3}"/.test(k), `a series per worker: ${k}`);
    // The run's own series (lora_mpt_*), run id aside, are the same for four times the workers. (The
    // runtime's, nodejs_* and process_*, vary with the kinds of handles and GC passes a poll sees.)
    // All polls count: a series that exists from a first measurement on may be missed by one.
    const keys = (o: Observation[]) =>
      [
        ...new Set(
          o.flatMap((x) =>
            x.seriesKeys.filter((k) => k.startsWith('lora_mpt_')).map((k) => k.replace(/run_id="[^"]*"/, '')),
          ),
        ),
      ].sort();
    const [a, b] = [keys(few), keys(many)];
    assert.equal(b.length, a.length, `8 workers: ${a.length} lora_mpt_ series, 32: ${b.length}`);
    assert.ok(
      a.every((k, i) => k === b[i]),
      'the same lora_mpt_ series',
    );
    // /api/status: 8 workers list all 8 rows; 32 list MAX_WORKER_ROWS and a summary counting all 32.
    const last = (o: Observation[]) => o[o.length - 1]!;
    assert.deepEqual([last(few).statusRows, last(few).statusWorkers], [8, 8]);
    assert.deepEqual([last(many).statusRows, last(many).statusWorkers], [MAX_WORKER_ROWS, 32]);
    assert.ok(
      most(many, 'statusBytes') < 2 * most(few, 'statusBytes'),
      `${most(many, 'statusBytes')} vs ${most(few, 'statusBytes')} bytes`,
    );
    t.diagnostic(
      `coordinator /metrics: ${most(few, 'metricsSeries')} series at 8 workers, ${most(many, 'metricsSeries')} at 32; /api/status ${most(few, 'statusBytes')} and ${most(many, 'statusBytes')} bytes`,
    );
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startLeafServers } from '../collective/leaf-servers.ts';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// A short run that exercises everything the split could disturb: dropout (seeded per micro-batch),
// masking of the prompt, length grouping, several micro-batches per step and a validation set.
const training = (run: TinyRun, out: string) =>
  runArgs(run, out, {
    batch_size: 12,
    micro_batch_size: 2,
    max_steps: 3,
    cutoff_len: 48,
    val_set_size: 6,
    eval_steps: 3,
    save_steps: 3,
    warmup_steps: 1,
    learning_rate: '1e-2',
    lora_dropout: 0.1,
    train_on_inputs: false,
    group_by_length: true,
    lora_target_modules: '[Wqkv,out_proj]',
  });

describe('distributed training equals single-process finetune', () => {
  let run: TinyRun;
  let nats: NatsServer;
  // The reference every case compares with: single-process finetune of the same run.
  before(async () => {
    run = await tinyRun([200, 320]);
    nats = await startNats({ maxPayload: 64 * 1024 });
    const ft = startLoraMpt('finetune', ['finetune', ...training(run, join(run.dir, 'finetune'))]);
    assert.equal(await ft.exited(), 0, ft.output());
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  for (const n of [1, 2, 3]) {
    it(`gives the same adapter with ${n} worker(s), within 1e-5 relative`, async (t) => {
      const out = join(run.dir, `workers-${n}`);
      const d = await startDistributedRun({
        natsUrl: nats.url,
        trainingFlags: training(run, out),
        workers: Array.from({ length: n }, (_, i) => `w${i}`),
      });
      try {
        assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
        for (const w of d.workers) assert.equal(await w.exited(), 0, w.output());
      } finally {
        await d.stop();
      }
      const diff = await assertSameAdapter(join(run.dir, 'finetune'), out, 1e-5);
      t.diagnostic(
        `largest per-tensor ||a-b||/||a||: ${diff.relative.toExponential(2)}; largest element difference / max|a|: ${diff.elementwise.toExponential(2)}`,
      );
      if (n > 1) {
        // Every worker took part: each commit event says who computed how many micro-batches.
        const computed = new Set(
          d.coordinator
            .events()
            .filter((e) => e.event === 'step_committed')
            .flatMap((e) => Object.keys(e.micro_batches as Record<string, number>)),
        );
        for (let i = 0; i < n; i++) assert.ok(computed.has(`w${i}`), `w${i} computed micro-batches`);
      }
    });
  }

  it('gives the same adapter with 3 workers on 2 nodes, hierarchical through NATS leaf servers, within 1e-5 relative', async (t) => {
    // The chart's shape on one machine: the coordinator on the cluster server, each node's workers
    // on that node's leaf server (--node_nats_url), node names from --node_name.
    const leaves = await startLeafServers(2, 64 * 1024);
    const out = join(run.dir, 'hierarchical');
    const onNode = (i: number) => ['--node_name', `gpu-${i}`, '--node_nats_url', leaves.leafUrls[i]!];
    const d = await startDistributedRun({
      natsUrl: leaves.hubUrl,
      trainingFlags: training(run, out),
      coordinatorFlags: ['--allreduce_algorithm', 'hierarchical'],
      workers: [],
      minWorkers: 3,
    });
    try {
      d.startWorker('w0', onNode(0));
      d.startWorker('w1', onNode(1));
      d.startWorker('w2', onNode(0));
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      for (const w of d.workers) assert.equal(await w.exited(), 0, w.output());
    } finally {
      await d.stop();
      await leaves.stop();
    }
    const diff = await assertSameAdapter(join(run.dir, 'finetune'), out, 1e-5);
    t.diagnostic(`largest per-tensor ||a-b||/||a||: ${diff.relative.toExponential(2)}`);
    // The coordinator knows each worker's node from its Hello (the names every ReduceStart carries).
    const joined = d.coordinator.events().filter((e) => e.event === 'worker_joined');
    assert.deepEqual(joined.map((e) => [e.worker, e.node]).sort(), [
      ['w0', 'gpu-0'],
      ['w1', 'gpu-1'],
      ['w2', 'gpu-0'],
    ]);
    // Each worker ran on the node and through the leaf server it was given.
    for (const [w, node] of [
      [0, 0],
      [1, 1],
      [2, 0],
    ] as const) {
      const started = d.workers[w]!.events().find((e) => e.event === 'worker_started');
      assert.ok(started?.msg.includes(`on node gpu-${node}: `), started?.msg);
      assert.ok(started?.msg.includes(`NATS ${leaves.leafUrls[node]},`), started?.msg);
    }
  });
});

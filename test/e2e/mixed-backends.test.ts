// A heterogeneous cluster: one worker on wasm and one on the native tensorflow backend share a run.
// The adapter must still equal single-process `finetune`'s (on the default backend) within the
// criterion of distributed-equivalence.test.ts: the backends differ only in float32 rounding.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { skipWithoutTensorflow } from '../model/support/backends.ts';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { type LoraProcess, startLoraMpt } from '../support/processes.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// Several micro-batches per step, dropout, prompt masking and a validation set, as the equivalence test.
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

describe('a cluster of wasm and tensorflow workers', { skip: skipWithoutTensorflow() }, () => {
  let run: TinyRun;
  let nats: NatsServer;
  before(async () => {
    run = await tinyRun([200, 320]);
    nats = await startNats({ maxPayload: 64 * 1024 });
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  it('gives the adapter of single-process finetune, within 1e-5 relative', async (t) => {
    const ft = startLoraMpt('finetune', ['finetune', ...training(run, join(run.dir, 'finetune'))]);
    assert.equal(await ft.exited(), 0, ft.output());
    const out = join(run.dir, 'mixed');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: training(run, out),
      workers: [],
      minWorkers: 2,
    });
    try {
      const wasm = d.startWorker('w-wasm', ['--backend', 'wasm']);
      const native = d.startWorker('w-tensorflow', ['--backend', 'tensorflow', '--num_threads', '1']);
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      for (const w of [wasm, native]) assert.equal(await w.exited(), 0, w.output());
      // Each ran the backend it was given, and both computed micro-batches.
      const said = (w: LoraProcess) => w.events().find((e) => e.event === 'backend_selected')?.msg ?? '';
      assert.match(said(wasm), /backend wasm \(single-threaded SIMD\): --backend wasm/);
      assert.match(
        said(native),
        /backend tensorflow \(@tensorflow\/tfjs-node(?:-gpu)? [\d.]+, libtensorflow [\d.]+, 1 intra-op thread from --num_threads[,)]/,
      );
      const computed = new Set(
        d.coordinator
          .events()
          .filter((e) => e.event === 'step_committed')
          .flatMap((e) => Object.keys(e.micro_batches as Record<string, number>)),
      );
      for (const id of ['w-wasm', 'w-tensorflow'])
        assert.ok(computed.has(id), `${id} computed micro-batches`);
    } finally {
      await d.stop();
    }
    const diff = await assertSameAdapter(join(run.dir, 'finetune'), out, 1e-5);
    t.diagnostic(
      `largest per-tensor ||a-b||/||a||: ${diff.relative.toExponential(2)}; largest element difference / max|a|: ${diff.elementwise.toExponential(2)}`,
    );
  });
});

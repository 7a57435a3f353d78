// A Llama through the coordinator and workers (real nats-server, real processes): with 1 and 2
// workers, and with a wasm and a tensorflow worker in one run (mixed-backends.test.ts for MPT), the
// adapter equals single-process finetune's within 1e-5. No --lora_target_modules: the
// coordinator resolves PEFT's llama default (q_proj, v_proj) into the run config the workers get.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { familyOf } from '../../src/families/registry.ts';
import { skipWithoutTensorflow } from '../model/support/backends.ts';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

const training = (run: TinyRun, out: string) =>
  runArgs(run, out, {
    batch_size: 8,
    micro_batch_size: 2,
    max_steps: 2,
    cutoff_len: 48,
    val_set_size: 0,
    save_steps: 2,
    warmup_steps: 1,
    learning_rate: '1e-2',
    lora_dropout: 0.1,
    train_on_inputs: false,
  });

describe('a Llama trained by the coordinator equals single-process finetune', () => {
  let run: TinyRun;
  let nats: NatsServer;
  before(async () => {
    const base = await tinyRun([200, 260]);
    const model = join(base.dir, 'llama');
    await familyOf('llama', 'test').writeRandomCheckpoint(model, {
      dModel: 32,
      nHeads: 4,
      nLayers: 2,
      vocabSize: 50432,
      maxSeqLen: 256,
      seed: 11,
      initStd: 0.2,
    });
    copyFileSync(join(base.model, 'tokenizer.json'), join(model, 'tokenizer.json'));
    run = { ...base, model };
    nats = await startNats({ maxPayload: 64 * 1024 });
    const ft = startLoraMpt('finetune', ['finetune', ...training(run, join(run.dir, 'finetune'))]);
    assert.equal(await ft.exited(), 0, ft.output());
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  for (const n of [1, 2]) {
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
      t.diagnostic(`largest per-tensor ||a-b||/||a||: ${diff.relative.toExponential(2)}`);
      const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
      assert.deepEqual([...config.target_modules].sort(), ['q_proj', 'v_proj']);
    });
  }

  it('gives the same adapter with a wasm and a tensorflow worker, within 1e-5 relative', {
    skip: skipWithoutTensorflow(),
  }, async (t) => {
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
    t.diagnostic(`largest per-tensor ||a-b||/||a||: ${diff.relative.toExponential(2)}`);
  });
});

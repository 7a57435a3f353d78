import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mptConfigJson } from '../../src/families/mpt/random-checkpoint.ts';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, SHARED_TOKENIZER, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// The synthetic backend keeps the equivalence criterion: its gradients are fixed by (seed,
// micro-batch id), so N workers and one finetune sum the same micro-batches, and only the order of
// the sums differs. The model is a config.json alone: no weights exist anywhere in the run.
const SYNTHETIC = ['--backend', 'synthetic', '--gpu_profile', 'none'];

const training = (model: string, run: TinyRun, out: string) =>
  runArgs({ model, data: run.data }, out, {
    tokenizer: SHARED_TOKENIZER,
    batch_size: 12,
    micro_batch_size: 2,
    max_steps: 3,
    cutoff_len: 48,
    val_set_size: 6,
    eval_steps: 3,
    save_steps: 3,
    warmup_steps: 1,
    learning_rate: '1e-2',
    group_by_length: true,
    lora_target_modules: '[Wqkv,out_proj]',
  });

describe('synthetic workers equal finetune --backend synthetic', () => {
  let run: TinyRun;
  let nats: NatsServer;
  let model: string;
  before(async () => {
    run = await tinyRun([200, 320]);
    const dir = join(run.dir, 'config-only');
    mkdirSync(dir);
    const config = mptConfigJson({ dModel: 256, nHeads: 8, nLayers: 4, vocabSize: 50432, maxSeqLen: 2048 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    model = `synthetic:${join(dir, 'config.json')}`;
    nats = await startNats({ maxPayload: 64 * 1024 });
    const out = join(run.dir, 'finetune');
    const ft = startLoraMpt('finetune', ['finetune', ...training(model, run, out), ...SYNTHETIC]);
    assert.equal(await ft.exited(), 0, ft.output());
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  for (const n of [1, 3]) {
    it(`gives the same adapter with ${n} synthetic worker(s), within 1e-5 relative`, async (t) => {
      const out = join(run.dir, `workers-${n}`);
      const d = await startDistributedRun({
        natsUrl: nats.url,
        trainingFlags: training(model, run, out),
        workers: Array.from({ length: n }, (_, i) => `w${i}`),
        workerFlags: SYNTHETIC,
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
      for (const w of d.workers) {
        const selected = w.events().find((e) => e.event === 'backend_selected');
        assert.equal(selected?.backend, 'synthetic', 'no TensorFlow.js backend was started');
        // Wqkv [768, 256] and out_proj [256, 256] in 4 blocks, r = 8.
        const loaded = w.events().find((e) => e.event === 'model_loaded');
        assert.equal(loaded?.lora_values, 4 * 8 * (256 + 768 + 256 + 256));
      }
      const computed = new Set(
        d.coordinator
          .events()
          .filter((e) => e.event === 'step_committed')
          .flatMap((e) => Object.keys(e.micro_batches as Record<string, number>)),
      );
      for (let i = 0; i < n; i++) assert.ok(computed.has(`w${i}`), `w${i} computed micro-batches`);
    });
  }

  it("launch --backend synthetic gives every worker the modelled GPU, uses no real one, and ends with finetune's adapter", async () => {
    const out = join(run.dir, 'launched');
    const launch = startLoraMpt(
      'launch',
      [
        'launch',
        '--nproc_per_node',
        '2',
        ...training(model, run, out),
        '--backend',
        'synthetic',
        '--gpu_profile',
        'h100-80gb',
        '--gpu_mfu',
        '0.9',
        '--log_format',
        'json',
      ],
      { CUDA_VISIBLE_DEVICES: '' },
    );
    assert.equal(await launch.exited(), 0, launch.output());
    const selected = launch.events().filter((e) => e.event === 'backend_selected');
    assert.deepEqual(
      selected.map((e) => [e.backend, e.device]),
      [
        ['synthetic', 'h100-80gb'],
        ['synthetic', 'h100-80gb'],
      ],
    );
    const diff = await assertSameAdapter(join(run.dir, 'finetune'), out, 1e-5);
    assert.ok(diff.relative <= 1e-5);
  });

  it('refuses a worker on a real backend, naming the synthetic model and the backend', async () => {
    const out = join(run.dir, 'mismatch');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: training(model, run, out),
      workers: ['real'],
      workerFlags: ['--backend', 'cpu', '--peak_tflops', '1'],
    });
    try {
      const [real] = d.workers;
      assert.notEqual(await real!.exited(), 0, real!.output());
      assert.match(
        real!.output(),
        /is described, not loaded: it runs on --backend synthetic only \(this process has --backend cpu\)/,
      );
    } finally {
      await d.stop();
    }
  });

  it('refuses DoRA before preparing the data: a config.json has no weights to start it from', async () => {
    const ft = startLoraMpt('dora', [
      'finetune',
      ...training(model, run, join(run.dir, 'dora')),
      ...SYNTHETIC,
      '--use_dora',
    ]);
    assert.equal(await ft.exited(), 2, ft.output());
    assert.match(
      ft.output(),
      /has no weights, and the LoRA variant \(--use_dora\) starts its own tensors from them/,
    );
    assert.ok(!ft.events().some((e) => e.event === 'data_ready'), 'no data was prepared');
  });
});

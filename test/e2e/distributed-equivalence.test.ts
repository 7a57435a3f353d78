import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
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
});

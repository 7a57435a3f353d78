// `lora-mpt finetune --init_lora_weights false` end to end on a tiny run: B starts away from zero
// (nn.Linear's init, as PEFT leaves it), the run trains, and adapter_config.json says false as PEFT
// writes it (the rest of the file is test/checkpoint/lora-init.test.ts's business).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { finetune } from '../support/finetune-run.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

const flags = {
  batch_size: 8,
  micro_batch_size: 4,
  cutoff_len: 48,
  val_set_size: 0,
  save_steps: 100,
  warmup_steps: 1,
  learning_rate: '1e-2',
  lora_r: 4,
  lora_target_modules: '[Wqkv,down_proj]',
  init_lora_weights: 'false',
  max_steps: 3,
};

describe('finetune --init_lora_weights false', () => {
  let run: TinyRun;
  before(async () => {
    run = await tinyRun([0, 24]);
  });
  after(() => run?.cleanup());

  it("starts with B at nn.Linear's init (not zero) and trains: the loss falls", async () => {
    const out = join(run.dir, 'init-false');
    const r = await finetune('init-false', run, out, flags);
    assert.equal(r.code, 0, r.p.output());
    assert.equal(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).init_lora_weights, false);
    const losses = r.p
      .events()
      .filter((e) => e.event === 'step_committed')
      .map((e) => (e as unknown as { loss: number }).loss);
    assert.equal(losses.length, 3);
    assert.ok(losses.every(Number.isFinite), `${losses}`);
    assert.ok((losses[2] as number) < (losses[0] as number), `loss ${losses}`);
    // AdamW moves an entry by at most ~lr a step, so a B that started at 0 (init true) stays within
    // 3·lr = 0.03 after 3 steps; init false starts B at U(-1/√r, 1/√r) = U(-0.5, 0.5).
    const adapter = await readPeftAdapter(out);
    const bs = [...adapter.tensors].filter(([k]) => k.endsWith('.lora_B.weight'));
    assert.equal(bs.length, 2 * 2);
    for (const [k, t] of bs) {
      const largest = t.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(largest > 0.3 && largest < 0.6, `${k}: largest |B| ${largest}`);
    }
  });
});

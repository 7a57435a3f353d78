// `lora-mpt finetune --use_dora` end to end on a tiny run: the adapter is PEFT's DoRA (use_dora true,
// a lora_magnitude_vector [out] per target), `lora-mpt eval` of it (which applies DoRA by merging it
// into the base weights, another code path) gives the eval loss finetune reported for the same
// validation rows, and a resumed DoRA adapter keeps training as DoRA (a contrary flag names both).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rowNorms } from '../../src/checkpoint/lora-variants/dora.ts';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { splitTrainVal } from '../../src/data/split.ts';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { evalLoss, finetune } from '../support/finetune-run.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

const ROWS = 40;
const flags = {
  batch_size: 8,
  micro_batch_size: 4,
  cutoff_len: 48,
  val_set_size: 6,
  eval_steps: 2,
  save_steps: 2,
  warmup_steps: 1,
  learning_rate: '1e-2',
  lora_r: 4,
  lora_alpha: 8,
  lora_target_modules: '[Wqkv,out_proj,up_proj,down_proj]',
  use_dora: true,
};

describe('finetune --use_dora', () => {
  let run: TinyRun;
  before(async () => {
    run = await tinyRun([0, ROWS]);
  });
  after(() => run?.cleanup());

  it("writes PEFT's DoRA adapter, whose eval loss (merged) is the one finetune reported, and resumes as DoRA", async (t) => {
    const out = join(run.dir, 'dora');
    const first = await finetune('dora', run, out, { ...flags, max_steps: 2 });
    assert.equal(first.code, 0, first.p.output());
    assert.equal(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).use_dora, true);
    const adapter = await readPeftAdapter(out);
    const magnitudes = [...adapter.tensors].filter(([k]) => k.endsWith('.lora_magnitude_vector'));
    assert.equal(magnitudes.length, 2 * 4);
    const widths: Record<string, number> = { Wqkv: 96, out_proj: 32, up_proj: 128, down_proj: 32 };
    for (const [k, t] of magnitudes) {
      const module = k.split('.').at(-2) as string;
      assert.deepEqual(t.shape, [widths[module]], k);
    }
    assert.equal(adapter.tensors.size, 3 * 8);
    // PEFT starts m at ‖W‖ per row; two AdamW steps of lr ≤ 1e-2 move each entry by at most 0.02.
    const ckpt = await openCheckpoint(run.model);
    let moved = false;
    for (const [k, t] of magnitudes) {
      const path = k.replace('base_model.model.', '').replace('.lora_magnitude_vector', '.weight');
      const w = await ckpt.readTensor(path);
      const norms = rowNorms(w.data, w.shape[0] as number, w.shape[1] as number);
      for (let i = 0; i < norms.length; i++) {
        const d = Math.abs((t.data[i] as number) - (norms[i] as number));
        assert.ok(d <= 0.0201, `${k}[${i}]: ${t.data[i]} vs ‖W‖ ${norms[i]}`);
        moved ||= d > 1e-4;
      }
    }
    assert.ok(moved, 'training moved the magnitudes');

    const reported = first.p.events().filter((e) => e.event === 'eval_done');
    const last = reported.at(-1) as unknown as { eval_loss: number; step: number };
    assert.equal(last.step, 2);
    const records = JSON.parse(readFileSync(run.data, 'utf8')) as unknown[];
    const valPath = join(run.dir, 'val.json');
    writeFileSync(valPath, JSON.stringify(splitTrainVal(ROWS, 6, 42).val.map((i) => records[i])));
    const loss = await evalLoss([
      ...['--base_model', run.model, '--lora_weights', out, '--data_path', valPath],
      ...['--cutoff_len', '48', '--micro_batch_size', '4', '--backend', 'cpu', '--json'],
    ]);
    t.diagnostic(`eval of the adapter ${loss}, finetune's eval_loss ${last.eval_loss}`);
    assert.ok(
      Math.abs(loss - last.eval_loss) < 1e-5 * last.eval_loss,
      `eval ${loss} vs finetune ${last.eval_loss}`,
    );

    const { use_dora: _d, ...noDora } = flags;
    // From its own checkpoint (trainer state with the magnitudes' AdamW moments), one step further.
    const extended = await finetune('dora-extend', run, out, {
      ...flags,
      max_steps: 3,
      resume_from_checkpoint: 'latest',
    });
    assert.equal(extended.code, 0, extended.p.output());
    assert.ok(extended.p.events().some((e) => e.event === 'run_resumed' && e.step === 2));
    assert.equal((await readPeftAdapter(out)).tensors.size, 3 * 8);
    const more = await finetune('dora-more', run, join(run.dir, 'dora-more'), {
      ...noDora,
      max_steps: 1,
      resume_from_checkpoint: out,
    });
    assert.equal(more.code, 0, more.p.output());
    const resumed = await readPeftAdapter(join(run.dir, 'dora-more'));
    assert.equal(resumed.config.lora.useDora, true);
    assert.equal(resumed.tensors.size, 3 * 8);
    const clash = await finetune('dora-clash', run, join(run.dir, 'dora-clash'), {
      ...noDora,
      max_steps: 1,
      use_dora: false,
      resume_from_checkpoint: out,
    });
    assert.equal(clash.code, 2);
    assert.match(clash.p.output(), /--use_dora false conflicts with use_dora true in .*adapter_config\.json/);
  });
});

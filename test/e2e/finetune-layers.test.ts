// `lora-mpt finetune --layers_to_transform` end to end on a tiny run (2 blocks): the adapter holds
// LoRA for the named block only and says so as PEFT does (layers_to_transform), `lora-mpt eval` of
// it (which reads that field, another code path) gives the eval loss finetune reported, and a block
// the model does not have is refused naming it.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { splitTrainVal } from '../../src/data/split.ts';
import { evalLoss, finetune } from '../support/finetune-run.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

const ROWS = 40;
const flags = {
  batch_size: 8,
  micro_batch_size: 4,
  cutoff_len: 48,
  val_set_size: 6,
  eval_steps: 2,
  save_steps: 100,
  warmup_steps: 1,
  learning_rate: '1e-2',
  lora_r: 4,
  lora_target_modules: '[Wqkv,out_proj]',
  layers_to_transform: '[1]',
};

describe('finetune --layers_to_transform', () => {
  let run: TinyRun;
  before(async () => {
    run = await tinyRun([0, ROWS]);
  });
  after(() => run?.cleanup());

  it("adapts only the named blocks, written as PEFT's layers_to_transform, and eval agrees", async (t) => {
    const out = join(run.dir, 'block1');
    const first = await finetune('block1', run, out, { ...flags, max_steps: 2 });
    assert.equal(first.code, 0, first.p.output());
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    assert.deepEqual(config.layers_to_transform, [1]);
    assert.equal(config.layers_pattern, null);
    const adapter = await readPeftAdapter(out);
    assert.deepEqual(
      [...adapter.tensors.keys()].sort(),
      ['attn.Wqkv.lora_A', 'attn.Wqkv.lora_B', 'attn.out_proj.lora_A', 'attn.out_proj.lora_B']
        .map((m) => `base_model.model.transformer.blocks.1.${m}.weight`)
        .sort(),
    );

    const reported = first.p.events().filter((e) => e.event === 'eval_done');
    const last = reported.at(-1) as unknown as { eval_loss: number; step: number };
    assert.equal(last.step, 2);
    const records = JSON.parse(readFileSync(run.data, 'utf8')) as unknown[];
    const valPath = join(run.dir, 'val.json');
    writeFileSync(valPath, JSON.stringify(splitTrainVal(ROWS, 6, 42).val.map((i) => records[i])));
    const common = [
      '--data_path',
      valPath,
      '--cutoff_len',
      '48',
      '--micro_batch_size',
      '4',
      '--backend',
      'cpu',
      '--json',
    ];
    const loss = await evalLoss(['--base_model', run.model, '--lora_weights', out, ...common]);
    const base = await evalLoss(['--base_model', run.model, ...common]);
    t.diagnostic(`eval of the adapter ${loss}, finetune's eval_loss ${last.eval_loss}, base ${base}`);
    assert.ok(
      Math.abs(loss - last.eval_loss) < 1e-5 * last.eval_loss,
      `eval ${loss} vs finetune ${last.eval_loss}`,
    );
    assert.ok(Math.abs(loss - base) > 1e-4, 'the adapter changes the loss');
  });

  it('refuses a block the model does not have, naming it', async () => {
    const bad = await finetune('block2', run, join(run.dir, 'block2'), {
      ...flags,
      layers_to_transform: '[0,2]',
      max_steps: 1,
    });
    assert.equal(bad.code, 2);
    assert.match(bad.p.output(), /--layers_to_transform names block 2; the model has 2 blocks \(0 to 1\)/);
  });
});

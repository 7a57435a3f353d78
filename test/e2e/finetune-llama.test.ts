// `lora-mpt finetune` on a Llama (a tiny random GQA checkpoint with the GPT-NeoX vocabulary) end to
// end: without --lora_target_modules the adapter gets PEFT's Llama default (q_proj, v_proj) and says
// so in adapter_config.json, the run trains (the loss falls), and `eval` with the result gives a
// lower loss than the base model on the training records.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { familyOf } from '../../src/families/registry.ts';
import { evalLoss, finetune } from '../support/finetune-run.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

describe('finetune a Llama', () => {
  let run: TinyRun;
  let model = '';
  before(async () => {
    run = await tinyRun([0, 24]);
    model = join(run.dir, 'llama');
    await familyOf('llama', 'test').writeRandomCheckpoint(model, {
      dModel: 32,
      nHeads: 4,
      nLayers: 2,
      vocabSize: 50432,
      maxSeqLen: 256,
      seed: 7,
      initStd: 0.2,
    });
    copyFileSync(join(run.model, 'tokenizer.json'), join(model, 'tokenizer.json'));
  });
  after(() => run?.cleanup());

  it("trains PEFT's default targets for llama and writes them to adapter_config.json", async () => {
    const out = join(run.dir, 'out');
    const flags = { batch_size: 8, micro_batch_size: 4, cutoff_len: 48, val_set_size: 0, save_steps: 100 };
    const r = await finetune('llama', { ...run, model }, out, {
      ...flags,
      learning_rate: '3e-2',
      max_steps: 4,
    });
    assert.equal(r.code, 0, r.p.output());
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    assert.deepEqual([...config.target_modules].sort(), ['q_proj', 'v_proj']);
    const adapter = await readPeftAdapter(out);
    assert.equal(adapter.tensors.size, 2 * 2 * 2); // 2 layers x 2 modules x (A, B)
    assert.ok(adapter.tensors.has('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight'));
    const losses = r.p
      .events()
      .filter((e) => e.event === 'step_committed')
      .map((e) => (e as unknown as { loss: number }).loss);
    assert.equal(losses.length, 4);
    assert.ok((losses[3] as number) < (losses[0] as number), `loss ${losses}`);
    const argv = ['--base_model', model, '--data_path', run.data, '--cutoff_len', '48', '--json'];
    const base = await evalLoss(argv);
    const tuned = await evalLoss([...argv, '--lora_weights', out]);
    assert.ok(tuned < base, `eval loss ${tuned} with the adapter, ${base} without`);
  });
});

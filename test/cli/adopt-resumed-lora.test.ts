// --resume_from_checkpoint with adapters Python PEFT 0.21 saved: the LoRA settings come from their
// adapter_config.json (rsLoRA included); a flag that disagrees names both values; DoRA adapters and
// adapters on chosen layers, which the trainer cannot continue, are refused by the field's name (not
// resumed as plain LoRA).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { targetModulesOf } from '../../src/checkpoint/lora-targets.ts';
import { adoptResumedLora } from '../../src/cli/adopt-resumed-lora.ts';
import { parseFlags } from '../../src/cli/flags.ts';
import { trainingFlags } from '../../src/cli/training-flags.ts';
import { trainingSettings } from '../../src/cli/training-settings.ts';
import { parseModelConfig } from '../../src/families/registry.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const settings = (...extra: string[]) =>
  trainingSettings(
    parseFlags(trainingFlags, ['--base_model', 'm', '--output_dir', '/nonexistent', ...extra]),
  );

describe('LoRA settings of a resumed adapter', () => {
  it('keeps finetune.py defaults when nothing is resumed', async () => {
    const s = await adoptResumedLora(settings());
    assert.deepEqual(
      [
        s.lora.r,
        s.lora.loraAlpha,
        s.lora.loraDropout,
        s.lora.targetModules,
        s.lora.useRslora,
        s.lora.useDora,
      ],
      [8, 16, 0.05, null, false, false],
    );
    // target_modules null is PEFT's default of the base model's family, resolved with its config.
    const mpt = parseModelConfig({ model_type: 'mpt', d_model: 8, n_heads: 2, n_layers: 1 }, 'c.json');
    assert.deepEqual(targetModulesOf(mpt, s.lora), ['Wqkv']);
    const llama = parseModelConfig({ model_type: 'llama', hidden_size: 8, num_attention_heads: 2 }, 'c.json');
    assert.deepEqual(targetModulesOf(llama, s.lora), ['q_proj', 'v_proj']);
  });

  it("takes r, alpha, dropout and targets from a PEFT adapter's config", async () => {
    const s = await adoptResumedLora(
      settings('--resume_from_checkpoint', `${FIXTURES}mpt/h6-all/adapter_init`),
    );
    assert.deepEqual([s.lora.r, s.lora.loraAlpha, s.lora.loraDropout], [4, 16, 0]);
    assert.deepEqual([...(s.lora.targetModules ?? [])].sort(), ['Wqkv', 'down_proj', 'out_proj', 'up_proj']);
  });

  it('accepts flags that agree (targets in any order) and refuses one that does not, naming both values', async () => {
    const dir = `${FIXTURES}mpt/h6-all/adapter_init`;
    const agree = settings(
      '--resume_from_checkpoint',
      dir,
      '--lora_r',
      '4',
      '--lora_target_modules',
      '[out_proj,Wqkv,up_proj,down_proj]',
    );
    assert.equal((await adoptResumedLora(agree)).lora.r, 4);
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', dir, '--lora_alpha', '32')),
      /--lora_alpha 32 conflicts with lora_alpha 16 in .*adapter_init\/adapter_config\.json/,
    );
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', dir, '--lora_target_modules', '[Wqkv]')),
      /--lora_target_modules \["Wqkv"\] conflicts with target_modules/,
    );
  });

  it("takes PEFT's use_rslora from an rsLoRA adapter; --use_rslora must agree", async () => {
    const dir = `${FIXTURES}adapters/lora-rslora-h8`;
    const s = await adoptResumedLora(settings('--resume_from_checkpoint', dir));
    assert.deepEqual([s.lora.r, s.lora.loraAlpha, s.lora.useRslora], [4, 8, true]);
    assert.equal(
      (await adoptResumedLora(settings('--resume_from_checkpoint', dir, '--use_rslora'))).lora.useRslora,
      true,
    );
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', dir, '--use_rslora=False')),
      /--use_rslora false conflicts with use_rslora true in .*lora-rslora-h8\/adapter_config\.json/,
    );
    const plain = `${FIXTURES}mpt/h6-all/adapter_init`;
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', plain, '--use_rslora')),
      /--use_rslora true conflicts with use_rslora false/,
    );
  });

  it("takes PEFT's use_dora from a DoRA adapter; --use_dora must agree", async () => {
    const dir = `${FIXTURES}adapters/dora-h6`;
    const s = await adoptResumedLora(settings('--resume_from_checkpoint', dir));
    assert.deepEqual([s.lora.r, s.lora.loraAlpha, s.lora.useDora], [4, 8, true]);
    assert.equal(
      (await adoptResumedLora(settings('--resume_from_checkpoint', dir, '--use_dora'))).lora.useDora,
      true,
    );
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', dir, '--use_dora=False')),
      /--use_dora false conflicts with use_dora true in .*dora-h6\/adapter_config\.json/,
    );
    const plain = `${FIXTURES}adapters/lora-rslora-h8`;
    assert.equal((await adoptResumedLora(settings('--resume_from_checkpoint', plain))).lora.useDora, false);
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', plain, '--use_dora')),
      /--use_dora true conflicts with use_dora false/,
    );
  });

  it("takes PEFT's layers_to_transform from the adapter; --layers_to_transform must agree", async () => {
    const dir = `${FIXTURES}adapters/layers-h12`; // PEFT 0.21, layers_to_transform [1]
    const s = await adoptResumedLora(settings('--resume_from_checkpoint', dir));
    assert.deepEqual(s.lora.layersToTransform, [1]);
    const agree = settings('--resume_from_checkpoint', dir, '--layers_to_transform', '[1]');
    assert.deepEqual((await adoptResumedLora(agree)).lora.layersToTransform, [1]);
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', dir, '--layers_to_transform', '[0,1]')),
      /--layers_to_transform \[0,1\] conflicts with layers_to_transform \[1\] in .*layers-h12\/adapter_config\.json/,
    );
    const all = `${FIXTURES}mpt/h6-all/adapter_init`; // every layer
    assert.equal(
      (await adoptResumedLora(settings('--resume_from_checkpoint', all))).lora.layersToTransform,
      null,
    );
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', all, '--layers_to_transform', '[0]')),
      /--layers_to_transform \[0\] conflicts with layers_to_transform null/,
    );
  });

  it('refuses to continue training an adapter with modules excluded, by the field name', async () => {
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', `${FIXTURES}adapters/exclude-h6`)),
      /exclude_modules \["transformer\.blocks\.0\.ffn\.up_proj"\]: training an adapter with modules excluded/,
    );
  });

  it('reads --layers_to_transform as block numbers and names a bad one', () => {
    assert.deepEqual(settings('--layers_to_transform', '[2,0]').lora.layersToTransform, [2, 0]);
    assert.equal(settings().lora.layersToTransform, null);
    assert.throws(
      () => settings('--layers_to_transform', '[1,x]'),
      /--layers_to_transform: "x" is not a block number/,
    );
    assert.throws(() => settings('--layers_to_transform', '[-1]'), /"-1" is not a block number/);
    assert.throws(() => settings('--layers_to_transform', '[3,3]'), /names block 3 twice/);
  });

  it('reads --lora_alpha as a number, as PEFT does', () => {
    assert.equal(settings('--lora_alpha', '8.5').lora.loraAlpha, 8.5);
    assert.equal(settings('--lora_alpha', '16.0').lora.loraAlpha, 16);
  });

  it('reads --init_lora_weights as PEFT spells it, and names a bad value', () => {
    assert.equal(settings().lora.initLoraWeights, true);
    assert.equal(settings('--init_lora_weights', 'gaussian').lora.initLoraWeights, 'gaussian');
    assert.equal(settings('--init_lora_weights', 'False').lora.initLoraWeights, false);
    assert.equal(settings('--init_lora_weights', 'true').lora.initLoraWeights, true);
    for (const bad of ['pissa', 'Gaussian', '0', '', 'constructor']) {
      assert.throws(
        () => settings('--init_lora_weights', bad),
        new RegExp(`--init_lora_weights: "${bad}" is not true, false or gaussian`),
      );
    }
  });

  it("takes PEFT's init_lora_weights from the adapter; --init_lora_weights must agree", async () => {
    const dir = `${FIXTURES}lora-init/gaussian`; // PEFT 0.21, init_lora_weights "gaussian"
    const s = await adoptResumedLora(settings('--resume_from_checkpoint', dir));
    assert.equal(s.lora.initLoraWeights, 'gaussian');
    await assert.rejects(
      adoptResumedLora(settings('--resume_from_checkpoint', dir, '--init_lora_weights', 'false')),
      /--init_lora_weights false conflicts with init_lora_weights "gaussian" in .*gaussian\/adapter_config\.json/,
    );
    const old = `${FIXTURES}mpt/h6-all/adapter_init`; // also written by PEFT 0.21: true
    assert.equal(
      (await adoptResumedLora(settings('--resume_from_checkpoint', old))).lora.initLoraWeights,
      true,
    );
  });
});

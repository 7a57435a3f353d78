// The LoRA spec's one table (src/checkpoint/lora-spec.ts): the same value read from PEFT's
// adapter_config.json names and from the run config's wire form, checked field by field, compared
// with a resumed adapter's, and written back without adding what a file did not say.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  completeLoraSettings,
  LORA_DEFAULTS,
  loraConflict,
  loraFlagsGiven,
  loraSettingsJson,
  parseLoraSettings,
} from '../../src/checkpoint/lora-spec.ts';
import { loraConfigJson, parseLoraConfig } from '../../src/checkpoint/peft-adapter.ts';

describe('the LoRA spec', () => {
  it('survives the wire form unchanged, every field required there', () => {
    const spec = { ...LORA_DEFAULTS, r: 4, targetModules: ['Wqkv', 'out_proj'], layersToTransform: [1] };
    assert.deepEqual(parseLoraSettings(JSON.parse(JSON.stringify(spec)), 'wire', 'wire'), spec);
    for (const key of Object.keys(LORA_DEFAULTS)) {
      const { [key]: _, ...without } = spec as Record<string, unknown>;
      assert.throws(
        () => parseLoraSettings(without, 'run config: "lora"', 'wire'),
        new RegExp(`"${key}" must be`),
      );
    }
  });

  it("takes PEFT's defaults for fields an adapter_config.json leaves out, and keeps them out when written", () => {
    const old = { target_modules: ['Wqkv'], peft_type: 'LORA' }; // an older PEFT's minimal file
    const s = parseLoraSettings(old, 'a.json', 'peft');
    assert.deepEqual(s, { r: 8, loraAlpha: 8, loraDropout: 0, targetModules: ['Wqkv'], useRslora: false });
    assert.deepEqual(Object.keys(loraSettingsJson(s)).sort(), [
      'lora_alpha',
      'lora_dropout',
      'r',
      'target_modules',
      'use_rslora',
    ]);
    const whole = completeLoraSettings(s);
    assert.equal(whole.initLoraWeights, true);
    assert.equal(whole.useDora, false);
    assert.equal(whole.layersToTransform, null);
    assert.doesNotMatch(loraConfigJson(parseLoraConfig(old, 'a.json')), /init_lora_weights|use_dora/);
  });

  it('refuses each bad field by its name, on both sides of its bounds', () => {
    const ok = { target_modules: ['Wqkv'] };
    for (const [field, bad] of [
      ['r', 0],
      ['r', 1.5],
      ['lora_alpha', 'x'],
      ['lora_dropout', -0.01],
      ['lora_dropout', 1.01],
      ['target_modules', []],
      ['use_rslora', 'yes'],
      ['use_dora', 1],
      ['layers_to_transform', [-1]],
      ['layers_to_transform', [0.5]],
      ['exclude_modules', [1]],
    ] as const) {
      assert.throws(
        () => parseLoraSettings({ ...ok, [field]: bad }, 'a.json', 'peft'),
        new RegExp(`a\\.json: "${field}"`),
      );
    }
    assert.equal(parseLoraSettings({ ...ok, lora_dropout: 1 }, 'a.json', 'peft').loraDropout, 1);
    assert.deepEqual(
      parseLoraSettings({ ...ok, layers_to_transform: 3 }, 'a.json', 'peft').layersToTransform,
      [3],
    );
  });

  it('checks flag values by the flag name', () => {
    assert.throws(() => loraFlagsGiven({ lora_alpha: 0 }), /--lora_alpha 0 must be above 0/);
    assert.throws(() => loraFlagsGiven({ lora_dropout: 1 }), /--lora_dropout 1 must be below 1/);
    assert.throws(() => loraFlagsGiven({ lora_target_modules: [] }), /--lora_target_modules is empty/);
    assert.deepEqual(loraFlagsGiven({ lora_r: 4, layers_to_transform: ['2', '0'] }), {
      r: 4,
      layersToTransform: [2, 0],
    });
  });

  it('names the first flag that disagrees with a resumed adapter, comparing lists as sets', () => {
    const saved = { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['Wqkv', 'out_proj'] };
    assert.equal(
      loraConflict({ r: 4, targetModules: ['out_proj', 'Wqkv'], useDora: false }, saved),
      undefined,
    );
    assert.deepEqual(loraConflict({ useRslora: true }, saved), {
      flag: 'use_rslora',
      given: true,
      field: 'use_rslora',
      saved: false,
    });
    assert.equal(loraConflict({ initLoraWeights: false }, saved)?.field, 'init_lora_weights');
  });
});

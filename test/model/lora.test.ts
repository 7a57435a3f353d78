import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initLoraWeights } from '../../src/checkpoint/lora-init.ts';
import { loraScaling } from '../../src/checkpoint/lora-spec.ts';
import { loraTargets, matchesTarget } from '../../src/checkpoint/lora-targets.ts';
import { tinyConfig } from './support/tiny-mpt.ts';

const settings = { r: 4, loraAlpha: 16, loraDropout: 0, targetModules: ['Wqkv'] as readonly string[] };

describe('LoRA targets', () => {
  it("match a list entry by the module name's last dotted components, as PEFT does", () => {
    assert.ok(matchesTarget('transformer.blocks.3.attn.Wqkv', ['Wqkv']));
    assert.ok(matchesTarget('transformer.blocks.3.attn.Wqkv', ['attn.Wqkv']));
    assert.ok(!matchesTarget('transformer.blocks.3.attn.Wqkv', ['qkv']));
    assert.ok(!matchesTarget('transformer.blocks.3.attn.Wqkv', ['wqkv']));
  });

  it('match a string as a regex over the whole name', () => {
    assert.ok(matchesTarget('transformer.blocks.1.ffn.up_proj', '.*\\.(up|down)_proj'));
    assert.ok(!matchesTarget('transformer.blocks.1.ffn.up_proj', 'up_proj'));
  });

  it('name A and B as PEFT saves them, with PEFT shapes', () => {
    const cfg = tinyConfig();
    const t = loraTargets(cfg, { ...settings, targetModules: ['Wqkv', 'down_proj'] });
    assert.deepEqual(
      t.map((x) => [x.aName, x.inFeatures, x.outFeatures]),
      [
        ['base_model.model.transformer.blocks.0.attn.Wqkv.lora_A.weight', 24, 72],
        ['base_model.model.transformer.blocks.0.ffn.down_proj.lora_A.weight', 96, 24],
        ['base_model.model.transformer.blocks.1.attn.Wqkv.lora_A.weight', 24, 72],
        ['base_model.model.transformer.blocks.1.ffn.down_proj.lora_A.weight', 96, 24],
      ],
    );
    assert.equal(t[0]?.bName, 'base_model.model.transformer.blocks.0.attn.Wqkv.lora_B.weight');
  });

  it('refuse target_modules that match no Linear', () => {
    assert.throws(
      () => loraTargets(tinyConfig(), { ...settings, targetModules: ['q_proj', 'v_proj'] }),
      /match no MPT Linear/,
    );
  });

  it('scale by alpha/r, or alpha/sqrt(r) with rsLoRA', () => {
    assert.equal(loraScaling(settings), 4);
    assert.equal(loraScaling({ ...settings, useRslora: true }), 8);
  });
});

describe('LoRA init', () => {
  it('draws A in ±1/sqrt(in) (kaiming-uniform a=√5), sets B to zero, and repeats for a seed', () => {
    const targets = loraTargets(tinyConfig(), settings);
    const w = initLoraWeights(targets, { r: 4 }, 7);
    const a = w.get(targets[0]?.aName ?? '') ?? new Float32Array();
    const bound = 1 / Math.sqrt(24);
    assert.equal(a.length, 4 * 24);
    assert.ok(a.every((v) => Math.abs(v) <= bound));
    assert.ok(Math.max(...a) > 0.8 * bound && Math.min(...a) < -0.8 * bound);
    assert.ok((w.get(targets[0]?.bName ?? '') ?? [1]).every((v) => v === 0));
    assert.deepEqual(initLoraWeights(targets, { r: 4 }, 7), w);
    assert.notDeepEqual(initLoraWeights(targets, { r: 4 }, 8).get(targets[0]?.aName ?? ''), a);
  });
});

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loraTargets } from '../../src/checkpoint/lora-targets.ts';
import { readCheckpointConfig } from '../../src/families/checkpoint.ts';
import { FAMILIES, familyOf, parseModelConfig } from '../../src/families/registry.ts';

describe('model family registry', () => {
  it("chooses the family from config.json's model_type", () => {
    const c = parseModelConfig({ model_type: 'mpt', d_model: 64, n_heads: 4, n_layers: 2 }, 'c.json');
    assert.equal(c.modelType, 'mpt');
    assert.equal(c.arch.displayName, 'MPT');
    assert.deepEqual(
      c.arch.linears.map((l) => [l.name, l.inFeatures, l.outFeatures]),
      [
        ['Wqkv', 64, 192],
        ['out_proj', 64, 64],
        ['up_proj', 64, 256],
        ['down_proj', 256, 64],
      ],
    );
    assert.equal(c.arch.modulePath(1, 'up_proj'), 'transformer.blocks.1.ffn.up_proj');
    assert.throws(
      () => c.arch.modulePath(0, 'q_proj'),
      /MPT has no Linear "q_proj"; it has Wqkv, out_proj, up_proj, down_proj/,
    );
  });

  it('refuses an unknown model_type naming the file, the value and the known families', () => {
    const known = FAMILIES.map((f) => f.modelType).join(', ');
    assert.equal(known, 'mpt, llama');
    assert.throws(
      () => parseModelConfig({ model_type: 'gpt_neox' }, 'ckpt/config.json'),
      /^ConfigError: ckpt\/config\.json: "model_type" "gpt_neox" is no model family this program knows \(known: mpt, llama\)$/,
    );
    assert.throws(
      () => parseModelConfig({ d_model: 8 }, 'a.json'),
      /a\.json: "model_type" absent is no model family .*known: mpt, llama/,
    );
    assert.throws(
      () => parseModelConfig({ model_type: 7 }, 'b.json'),
      /b\.json: "model_type" 7 is no model family/,
    );
    assert.throws(() => parseModelConfig([], 'c.json'), /c\.json: expected a JSON object/);
    assert.throws(() => familyOf('gpt2', 'x'), /"gpt2" .*known: mpt, llama/);
  });

  it('reads a checkpoint directory through the family of its config.json', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'family-'));
    try {
      await writeFile(
        join(dir, 'config.json'),
        JSON.stringify({ model_type: 'mpt', d_model: 32, n_heads: 4, n_layers: 3 }),
      );
      const { config } = await readCheckpointConfig(dir);
      const targets = loraTargets(config, {
        r: 2,
        loraAlpha: 4,
        loraDropout: 0,
        targetModules: ['out_proj'],
      });
      assert.deepEqual(
        targets.map((t) => t.path),
        [0, 1, 2].map((l) => `transformer.blocks.${l}.attn.out_proj`),
      );
      await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'bert' }));
      await assert.rejects(
        readCheckpointConfig(dir),
        new RegExp(`${join(dir, 'config.json')}: "model_type" "bert"`),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names the Linears LoRA can wrap when target_modules match none', () => {
    const c = parseModelConfig({ model_type: 'mpt', d_model: 16, n_heads: 2, n_layers: 1 }, 'c.json');
    assert.throws(
      () => loraTargets(c, { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['q_proj'] }),
      /match no MPT Linear; use some of Wqkv, out_proj, up_proj, down_proj/,
    );
  });
});

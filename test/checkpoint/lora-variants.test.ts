// The LoRA variants on the host (src/checkpoint/lora-variants): which one the settings choose, the
// tensors and starting values they add, and the merged weight against the formula in float64.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoraSettings } from '../../src/checkpoint/lora-spec.ts';
import { loraTargets } from '../../src/checkpoint/lora-targets.ts';
import { DORA, LORA, loraVariantOf } from '../../src/checkpoint/lora-variants/index.ts';
import { initialVariantTensors } from '../../src/checkpoint/lora-variants/initial-tensors.ts';
import { parseMptConfig } from '../../src/families/mpt/config.ts';

const lora: LoraSettings = { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['Wqkv', 'down_proj'] };
const config = parseMptConfig(
  { d_model: 8, n_heads: 2, n_layers: 2, expansion_ratio: 2, max_seq_len: 16, vocab_size: 32 },
  'test config',
);

function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(seed * 7.1 + i * 1.3)));
}

describe('LoRA variants', () => {
  it('are plain LoRA unless use_dora, and DoRA with it', () => {
    assert.equal(loraVariantOf(lora), LORA);
    assert.equal(loraVariantOf({ ...lora, useDora: false }), LORA);
    assert.equal(loraVariantOf({ ...lora, useDora: true }), DORA);
  });

  it('refuse two variants switched on at once, naming both', () => {
    const other = { ...DORA, name: 'Other (use_other)' };
    assert.throws(
      () => loraVariantOf({ ...lora, useDora: true }, [DORA, other]),
      /DoRA \(use_dora\) and Other/,
    );
  });

  it("gives DoRA's lora_magnitude_vector [out] per target, plain LoRA nothing beyond A and B", () => {
    const [t] = loraTargets(config, lora);
    assert.ok(t !== undefined);
    assert.deepEqual(LORA.extraTensors(t), []);
    assert.deepEqual(DORA.extraTensors(t), [
      { name: 'base_model.model.transformer.blocks.0.attn.Wqkv.lora_magnitude_vector', shape: [24] },
    ]);
  });

  it("start DoRA's magnitudes at ‖W‖ per row, and read no base weight for plain LoRA", async () => {
    const targets = loraTargets(config, lora);
    const weights = new Map(
      targets.map((t, i) => [`${t.path}.weight`, values(t.outFeatures * t.inFeatures, i)]),
    );
    const read = async (name: string) => {
      const t = targets.find((x) => `${x.path}.weight` === name);
      if (t === undefined) throw new Error(`no ${name}`);
      return { name, shape: [t.outFeatures, t.inFeatures], data: weights.get(name) as Float32Array };
    };
    const none = await initialVariantTensors(LORA, targets, () => {
      throw new Error('plain LoRA read a base weight');
    });
    assert.equal(none.size, 0);
    const got = await initialVariantTensors(DORA, targets, read);
    assert.equal(got.size, targets.length);
    for (const t of targets) {
      const w = weights.get(`${t.path}.weight`) as Float32Array;
      const m = got.get(t.magnitudeName) as Float32Array;
      for (let o = 0; o < t.outFeatures; o++) {
        const row = w.subarray(o * t.inFeatures, (o + 1) * t.inFeatures);
        const want = Math.hypot(...row);
        assert.ok(Math.abs((m[o] as number) - want) <= 1e-6 * want, `${t.magnitudeName}[${o}]`);
      }
    }
  });

  it('merge W + s·B·A (LoRA) and (m / ‖W + s·B·A‖_row) ⊙ (W + s·B·A) (DoRA) as the formula in float64', () => {
    const [outF, inF, r, scale] = [5, 7, 3, 1.5];
    const w = values(outF * inF, 1);
    const a = values(r * inF, 2);
    const b = values(outF * r, 3);
    const m = Float32Array.from({ length: outF }, (_, o) => 0.5 + o);
    const adapter = { target: { inFeatures: inF, outFeatures: outF }, a, b, r, scale, extras: [m] };
    const sum = (o: number, i: number) =>
      (w[o * inF + i] as number) +
      scale *
        Array.from({ length: r }, (_, k) => (b[o * r + k] as number) * (a[k * inF + i] as number)).reduce(
          (x, y) => x + y,
        );
    const plain = Float32Array.from(w);
    LORA.mergeWeight(plain, { ...adapter, extras: [] });
    const dora = Float32Array.from(w);
    DORA.mergeWeight(dora, adapter);
    for (let o = 0; o < outF; o++) {
      const norm = Math.hypot(...Array.from({ length: inF }, (_, i) => sum(o, i)));
      for (let i = 0; i < inF; i++) {
        assert.ok(Math.abs((plain[o * inF + i] as number) - sum(o, i)) < 1e-6, `LoRA [${o}, ${i}]`);
        const want = ((m[o] as number) / norm) * sum(o, i);
        assert.ok(
          Math.abs((dora[o * inF + i] as number) - want) < 1e-5 * Math.max(1, Math.abs(want)),
          `DoRA [${o}, ${i}]`,
        );
      }
    }
  });
});

// The memory plan of src/model/memory-plan.ts against figures computed by hand for a small config, and
// the one-line verdict: the numbers, and the flags that would make a run fit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GIB, type MemorySettings, memoryVerdict, planMemory } from '../../src/model/memory-plan.ts';
import { tinyConfig } from './support/tiny-mpt.ts';

// d 64, 4 heads, 2 layers, vocab 256, FFN 256; LoRA r=4 on Wqkv; 2 rows x 16 tokens (N = 32).
const small = tinyConfig({ d_model: 64, n_heads: 4, n_layers: 2, vocab_size: 256, max_seq_len: 128 });
const settings: MemorySettings = {
  layout: 'batched',
  load8bit: false,
  gradientCheckpointing: false,
  microBatchSize: 2,
  seqLen: 16,
  lora: { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['Wqkv'] },
  training: true,
};
const RUNTIME = 0.75 * GIB;

describe('memory plan of a small MPT', () => {
  it('counts the frozen linears at 4 bytes a value: 2 layers x (3·64² + 64² + 2·256·64) = 98 304 values', () => {
    assert.equal(planMemory(small, settings).frozenLinears, 98_304 * 4);
  });

  it('counts wte on the host and once more as vocab chunks, plus the norms (320 values)', () => {
    assert.equal(planMemory(small, settings).embedding, 16_384 * 4 + 16_384 * 4 + 320 * 4);
  });

  it('counts LoRA as 2 048 values (2 layers x 4·(64 + 192)) times 6 host and 2 device copies', () => {
    assert.equal(planMemory(small, settings).loraState, 8 * 2_048 * 4);
  });

  it("adds DoRA's magnitudes (2 layers x 192), its saved z [N, out] and two [N, 256] working values", () => {
    const dora = { ...settings, lora: { ...settings.lora, useDora: true } };
    const p = planMemory(small, dora);
    assert.equal(p.loraState, 8 * (2_048 + 384) * 4);
    // Wqkv's z: 32·192 = 6 144 more per block; working: 2·32·max(192, 256) = 16 384 more.
    assert.equal(p.activations, (2 * (22_720 + 6_144) + 4_096 + 3_072) * 4);
    assert.equal(p.working, (51_200 + 16_384) * 4);
  });

  it('keeps 22 720 values per block for the backward, plus the residual, dL/dh and the bias', () => {
    // ln1 + ln2 2·(32·64 + 32) = 4 160; preAct 32·256 = 8 192; q, k, v 3·32·64 = 6 144; probs
    // 2·4·16² = 2 048; Wqkv input 32·64 + u 32·4 = 2 176. Residual + dL/dh 2·32·64; bias 3·4·16².
    assert.equal(planMemory(small, settings).activations, (2 * 22_720 + 4_096 + 3_072) * 4);
  });

  it('keeps only block inputs and one recomputed block under gradient checkpointing', () => {
    const p = planMemory(small, { ...settings, gradientCheckpointing: true });
    assert.equal(p.activations, (2 * 2_048 + 22_720 + 4_096 + 3_072) * 4);
  });

  it("takes one block's working set when it is larger than the loss's", () => {
    // Block: 5·2·4·16² + 12·32·64 + 2·32·256 = 51 200; loss: 4·32·256 + 3·32·64 = 38 912.
    assert.equal(planMemory(small, settings).working, 51_200 * 4);
  });

  it('sums the parts and the runtime, and splits them into host and device', () => {
    const p = planMemory(small, settings);
    assert.equal(p.total, 1_006_336 + RUNTIME);
    assert.equal(p.host, 16_384 * 4 + 6 * 2_048 * 4 + RUNTIME);
    assert.equal(p.device, p.total - p.host);
  });

  it('with load_8bit keeps int8 values + a scale per row, and one dequantized block', () => {
    // 98 304 bytes of int8, 2·576 rows x 4 bytes of scales, one block (49 152 values) as float32
    // on the host and on the device, and that block's 576 scales on the device.
    const p = planMemory(small, { ...settings, load8bit: true });
    assert.equal(p.frozenLinears, 98_304 + 1_152 * 4 + 2 * 49_152 * 4 + 576 * 4);
  });

  it('doubles the weights in the plain-2d layout (W and Wᵀ)', () => {
    const p = planMemory(small, { ...settings, layout: 'plain-2d' });
    assert.equal(p.frozenLinears, 2 * 98_304 * 4);
    assert.equal(p.embedding, 16_384 * 4 + 2 * 16_384 * 4 + 320 * 4);
  });
});

const mpt7b = tinyConfig({ d_model: 4096, n_heads: 32, n_layers: 32, vocab_size: 50432, max_seq_len: 2048 });
const run7b: MemorySettings = {
  ...settings,
  lora: { ...settings.lora, r: 8 },
  microBatchSize: 4,
  seqLen: 256,
};
const budget = (gib: number) => ({ bytes: gib * GIB, pool: 'total' as const, where: 'given by the test' });

describe('memory verdict', () => {
  it('passes a run that fits', () => {
    assert.equal(memoryVerdict(mpt7b, run7b, budget(64)), null);
  });

  it('names the numbers and --load_8bit when that alone fits MPT-7B', () => {
    const v = memoryVerdict(mpt7b, run7b, budget(20)) ?? '';
    assert.match(v, /6\.65B parameters .* needs 33\.0 GiB at float32, micro_batch_size 4 x 256 tokens/);
    assert.match(v, /but 20\.0 GiB is given by the test; --load_8bit would fit it in 16\.5 GiB$/);
  });

  it('adds --gradient_checkpointing when int8 weights alone are not enough', () => {
    const v = memoryVerdict(mpt7b, run7b, budget(12)) ?? '';
    assert.match(v, /; --load_8bit --gradient_checkpointing would fit it in 11\.1 GiB$/);
  });

  it('says when no flag makes it fit, with the least it could need', () => {
    const v = memoryVerdict(mpt7b, run7b, budget(4)) ?? '';
    assert.match(
      v,
      /no flag makes it fit \(--load_8bit --gradient_checkpointing --micro_batch_size 1 --cutoff_len 128 still needs \d+\.\d GiB\)/,
    );
  });
});

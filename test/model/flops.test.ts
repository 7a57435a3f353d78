import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loraTargets } from '../../src/checkpoint/lora-targets.ts';
import { DORA } from '../../src/checkpoint/lora-variants/index.ts';
import { parseMptConfig } from '../../src/families/mpt/config.ts';
import { flopsModelOf, forwardFlops, trainStepFlops } from '../../src/model/flops.ts';

const configOf = (c: Record<string, number>) =>
  parseMptConfig({ expansion_ratio: 4, max_seq_len: 2048, ...c }, 'test config');

const model = (c: Record<string, number>, r: number, targetModules: string[]) => {
  const config = configOf(c);
  return flopsModelOf(config, r, loraTargets(config, { r, loraAlpha: 16, loraDropout: 0, targetModules }));
};

describe('model FLOPs of a micro-batch', () => {
  it("gives docs/model.md's train-step figures: 120.4 GFLOP executed, 162.5 with every row's logits", () => {
    const mid = model({ d_model: 512, n_heads: 8, n_layers: 4, vocab_size: 50432 }, 8, ['Wqkv']);
    assert.equal((trainStepFlops(mid, { rows: 4, seqLen: 256, logitRows: 616 }) / 1e9).toFixed(1), '120.4');
    assert.equal((trainStepFlops(mid, { rows: 4, seqLen: 256, logitRows: 1024 }) / 1e9).toFixed(1), '162.5');
  });

  it('is about 4 FLOPs per frozen block weight per token for MPT-7B at short sequences (no weight gradients)', () => {
    const mpt7b = model({ d_model: 4096, n_heads: 32, n_layers: 32, vocab_size: 50432 }, 8, ['Wqkv']);
    const blockWeights = 32 * 12 * 4096 * 4096;
    const perToken = trainStepFlops(mpt7b, { rows: 1, seqLen: 8, logitRows: 0 }) / 8;
    assert.ok(Math.abs(perToken / (4 * blockWeights) - 1) < 0.01, `${perToken / blockWeights} per weight`);
  });

  it('counts an evaluation micro-batch as the forward only, about half a training one (no weight gradients)', () => {
    const m = model({ d_model: 64, n_heads: 4, n_layers: 2, vocab_size: 1000 }, 4, ['Wqkv', 'up_proj']);
    const batch = { rows: 2, seqLen: 32, logitRows: 40 };
    const ratio = trainStepFlops(m, batch) / forwardFlops(m, batch);
    assert.ok(ratio > 1.9 && ratio < 2.1, `train/forward ${ratio}`);
  });

  it('adds, for DoRA with dropout, one more base matmul per adapted Linear forward and (but the lowest) backward', () => {
    const c = configOf({ d_model: 512, n_heads: 8, n_layers: 4, vocab_size: 50432 });
    const targets = loraTargets(c, {
      r: 8,
      loraAlpha: 16,
      loraDropout: 0.05,
      targetModules: ['Wqkv', 'up_proj'],
    });
    const plain = flopsModelOf(c, 8, targets);
    const dora = flopsModelOf(c, 8, targets, { variant: DORA, dropout: true });
    const batch = { rows: 4, seqLen: 256, logitRows: 600 };
    const n = 4 * 256;
    const wqkv = 2 * n * 512 * 1536; // one more x·Wᵀ of one Wqkv
    const up = 2 * n * 512 * 2048;
    assert.equal(forwardFlops(dora, batch) - forwardFlops(plain, batch), 4 * (wqkv + up));
    // backward: every adapted Linear but layer 0's Wqkv (no input gradient there)
    assert.equal(
      trainStepFlops(dora, batch) - trainStepFlops(plain, batch),
      4 * (wqkv + up) + 3 * wqkv + 4 * up,
    );
  });

  it("crosses to the worker's compute thread (structured clone) with its count, DoRA's included", () => {
    const c = configOf({ d_model: 64, n_heads: 4, n_layers: 2, vocab_size: 1000 });
    const targets = loraTargets(c, {
      r: 4,
      loraAlpha: 8,
      loraDropout: 0.1,
      targetModules: ['Wqkv', 'up_proj'],
    });
    const dora = flopsModelOf(c, 4, targets, { variant: DORA, dropout: true });
    const batch = { rows: 2, seqLen: 16, logitRows: 20 };
    assert.equal(trainStepFlops(structuredClone(dora), batch), trainStepFlops(dora, batch));
  });
});

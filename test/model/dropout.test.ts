import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dropoutMask } from '../../src/model/dropout.ts';

describe('LoRA dropout masks', () => {
  const seed = { seed: 42, microBatch: 7 };

  it('drop about p of the inputs and scale the rest by 1/(1-p)', () => {
    const m = dropoutMask(seed, 0, 'Wqkv', 0.25, 100_000);
    const dropped = m.filter((v) => v === 0).length / m.length;
    assert.ok(Math.abs(dropped - 0.25) < 0.01, `dropped ${dropped}`);
    assert.ok(m.every((v) => v === 0 || v === Math.fround(1 / 0.75)));
  });

  it('are a function of (seed, micro-batch, layer, module) only', () => {
    const a = dropoutMask(seed, 1, 'up_proj', 0.1, 1000);
    assert.deepEqual(dropoutMask({ seed: 42, microBatch: 7 }, 1, 'up_proj', 0.1, 1000), a);
    for (const other of [
      dropoutMask({ seed: 42, microBatch: 8 }, 1, 'up_proj', 0.1, 1000),
      dropoutMask({ seed: 43, microBatch: 7 }, 1, 'up_proj', 0.1, 1000),
      dropoutMask(seed, 0, 'up_proj', 0.1, 1000),
      dropoutMask(seed, 1, 'down_proj', 0.1, 1000),
    ]) {
      assert.notDeepEqual(other, a);
    }
  });
});

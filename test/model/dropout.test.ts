import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MPT_LINEARS, type MptLinearName } from '../../src/families/mpt/architecture.ts';
import { dropoutMask } from '../../src/model/dropout.ts';

/** Where an MPT Linear's LoRA input sits: block `layer`, its index among the block's four. */
const site = (layer: number, module: MptLinearName) => ({
  layer,
  index: MPT_LINEARS.indexOf(module),
  perBlock: MPT_LINEARS.length,
});

describe('LoRA dropout masks', () => {
  const seed = { seed: 42, microBatch: 7 };

  it('drop about p of the inputs and scale the rest by 1/(1-p)', () => {
    const m = dropoutMask(seed, site(0, 'Wqkv'), 0.25, 100_000);
    const dropped = m.filter((v) => v === 0).length / m.length;
    assert.ok(Math.abs(dropped - 0.25) < 0.01, `dropped ${dropped}`);
    assert.ok(m.every((v) => v === 0 || v === Math.fround(1 / 0.75)));
  });

  it('are a function of (seed, micro-batch, layer, module) only', () => {
    const a = dropoutMask(seed, site(1, 'up_proj'), 0.1, 1000);
    assert.deepEqual(dropoutMask({ seed: 42, microBatch: 7 }, site(1, 'up_proj'), 0.1, 1000), a);
    for (const other of [
      dropoutMask({ seed: 42, microBatch: 8 }, site(1, 'up_proj'), 0.1, 1000),
      dropoutMask({ seed: 43, microBatch: 7 }, site(1, 'up_proj'), 0.1, 1000),
      dropoutMask(seed, site(0, 'up_proj'), 0.1, 1000),
      dropoutMask(seed, site(1, 'down_proj'), 0.1, 1000),
    ]) {
      assert.notDeepEqual(other, a);
    }
  });
});

describe('LoRA dropout sites', () => {
  it('refuse a Linear index outside the block, naming it', () => {
    const seed = { seed: 1, microBatch: 0 };
    for (const index of [-1, 4]) {
      assert.throws(
        () => dropoutMask(seed, { layer: 0, index, perBlock: 4 }, 0.1, 10),
        new RegExp(`Linear index ${index} is outside the block's 4`),
      );
    }
  });
});

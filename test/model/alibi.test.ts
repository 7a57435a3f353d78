import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alibiSlopes, causalAlibiBias, keyPaddingBias, MASKED_SCORE } from '../../src/model/alibi.ts';

describe('ALiBi slopes', () => {
  it('follow the non-power-of-two rule for 12 heads (exponents 1..8 then 0.5..3.5)', () => {
    const exps = alibiSlopes(12, 8).map((s) => -Math.log2(s));
    const want = [1, 2, 3, 4, 5, 6, 7, 8, 0.5, 1.5, 2.5, 3.5];
    for (const [i, e] of exps.entries())
      assert.ok(Math.abs(e - (want[i] as number)) < 1e-12, `head ${i}: ${e}`);
  });

  it('are 2^(-h/4) for MPT-7B (32 heads, alibi_bias_max 8)', () => {
    const s = alibiSlopes(32, 8);
    assert.equal(s.length, 32);
    assert.ok(Math.abs((s[0] as number) - 0.840896) < 1e-6);
    assert.ok(Math.abs((s[1] as number) - Math.SQRT1_2) < 1e-12); // the facts doc: 0.707107
    assert.ok(Math.abs((s[3] as number) - 0.5) < 1e-12);
    assert.equal(s[31], 2 ** -8);
  });

  it('are 2^-1 .. 2^-8 for 8 heads', () => {
    assert.deepEqual(
      alibiSlopes(8, 8),
      [1, 2, 3, 4, 5, 6, 7, 8].map((i) => 2 ** -i),
    );
  });
});

describe('attention bias', () => {
  it('puts -slope·(T-1-j) on visible keys and MASKED_SCORE above the diagonal', () => {
    const t = 4;
    const bias = causalAlibiBias([0.5], 1, t);
    assert.deepEqual(
      Array.from(bias.subarray(0, t)),
      [-1.5, MASKED_SCORE, MASKED_SCORE, MASKED_SCORE].map(Math.fround),
    );
    assert.deepEqual(Array.from(bias.subarray(3 * t, 4 * t)), [-1.5, -1, -0.5, 0]);
  });

  it('has no padding part when every token is real', () => {
    assert.equal(keyPaddingBias(Int32Array.from([1, 1, 1, 1]), 2, 2), null);
    assert.deepEqual(
      Array.from(keyPaddingBias(Int32Array.from([1, 1, 1, 0]), 2, 2) ?? []),
      [0, 0, 0, MASKED_SCORE].map(Math.fround),
    );
  });
});

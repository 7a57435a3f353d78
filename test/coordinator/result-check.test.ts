import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkResult } from '../../src/coordinator/result-check.ts';
import { type MicroBatch, supervisedTokens } from '../../src/data/micro-batch.ts';
import { shiftedTargets } from '../../src/model/token-batch.ts';

// Two rows of 4: row 0 supervises positions 2 and 3, row 1 positions 0 (never a target after the
// shift: nothing predicts it) and 3. So 3 supervised tokens.
const mb: MicroBatch = {
  id: 7,
  step: 0,
  rows: 2,
  seqLen: 4,
  inputIds: Int32Array.of(5, 6, 7, 8, 9, 10, 11, 0),
  labels: Int32Array.of(-100, -100, 7, 8, 9, -100, -100, 4),
  attentionMask: Int32Array.of(1, 1, 1, 1, 1, 1, 1, 0),
};

describe('micro-batch result check', () => {
  it('counts supervised tokens from the labels as the loss does (after the shift)', () => {
    assert.equal(supervisedTokens(mb), 3);
    assert.equal(supervisedTokens(mb), shiftedTargets(mb).rows.length);
  });

  it('counts a finite result with the right token count, in the coordinator’s own count', () => {
    assert.deepEqual(checkResult(mb, { lossSum: 12.5, supervisedTokens: 3, gradNorm: 0.7 }, true), {
      ok: true,
      tokens: 3,
    });
  });

  for (const [what, r] of [
    ['a NaN loss', { lossSum: Number.NaN, supervisedTokens: 3, gradNorm: 1 }],
    ['an infinite loss', { lossSum: Number.POSITIVE_INFINITY, supervisedTokens: 3, gradNorm: 1 }],
    ['a negative loss sum', { lossSum: -1, supervisedTokens: 3, gradNorm: 1 }],
    ['a NaN gradient norm', { lossSum: 1, supervisedTokens: 3, gradNorm: Number.NaN }],
    ['an infinite gradient norm', { lossSum: 1, supervisedTokens: 3, gradNorm: Number.NEGATIVE_INFINITY }],
    ['an inflated token count', { lossSum: 1, supervisedTokens: 1_000_000, gradNorm: 1 }],
  ] as const) {
    it(`refuses ${what}, naming the micro-batch`, () => {
      const v = checkResult(mb, r, true);
      assert.equal(v.ok, false);
      assert.match((v as { why: string }).why, /micro-batch 7/);
    });
  }

  it('does not ask an evaluation result for a gradient', () => {
    assert.equal(checkResult(mb, { lossSum: 1, supervisedTokens: 3, gradNorm: Number.NaN }, false).ok, true);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gradientOutliers, OUTLIER_FACTOR } from '../../src/coordinator/gradient-outliers.ts';
import { type WorkerId, workerId } from '../../src/coordinator/step-ledger.ts';

const step = (o: Record<string, number[]>) =>
  new Map<WorkerId, number[]>(Object.entries(o).map(([k, v]) => [workerId(k), v]));

describe('gradient outliers', () => {
  it('names the worker whose norm per token is far above the others’', () => {
    const out = gradientOutliers(step({ a: [1, 1.2], b: [0.9, 1.1], big: [1e4, 2e4] }));
    assert.deepEqual(
      out.map((o) => o.worker),
      ['big'],
    );
    assert.ok(out[0]!.perToken > OUTLIER_FACTOR * out[0]!.othersPerToken);
  });

  it('names a worker whose gradients are all but zero', () => {
    assert.deepEqual(
      gradientOutliers(step({ a: [1], b: [2], c: [1.5], lazy: [0] })).map((o) => o.worker),
      ['lazy'],
    );
  });

  it('leaves honest spread alone', () => {
    assert.deepEqual(gradientOutliers(step({ a: [0.5, 3], b: [1, 4], c: [0.2, 9] })), []);
  });

  it('says nothing with two workers: it cannot tell which one is odd', () => {
    assert.deepEqual(gradientOutliers(step({ a: [1], big: [1e6] })), []);
  });
});

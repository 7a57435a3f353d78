import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEADLINE_FACTOR,
  MicroBatchTimes,
  UNMEASURED_FACTOR,
} from '../../src/coordinator/microbatch-deadline.ts';

describe('default micro-batch deadline', () => {
  it('is generous until a micro-batch was measured', () => {
    assert.equal(new MicroBatchTimes().deadline(3000), UNMEASURED_FACTOR * 3000);
  });

  it('grows with the measured times, never below the floor', () => {
    const t = new MicroBatchTimes();
    for (let i = 1; i <= 10; i++) t.record(1000 * i);
    assert.equal(t.p90(), 10_000);
    assert.equal(t.deadline(3000), DEADLINE_FACTOR * 10_000);
    const quick = new MicroBatchTimes();
    quick.record(5);
    assert.equal(quick.deadline(3000), 3000);
  });

  it('follows the recent times and ignores nonsense', () => {
    const t = new MicroBatchTimes();
    for (let i = 0; i < 64; i++) t.record(100_000);
    for (let i = 0; i < 64; i++) t.record(10);
    t.record(Number.NaN);
    t.record(-5);
    assert.equal(t.p90(), 10);
  });

  it('keeps exactly the last 64 times', () => {
    const t = new MicroBatchTimes();
    for (let i = 1; i <= 100; i++) t.record(i);
    // The window holds 37..100; its 90th percentile (index floor(0.9 x 64) = 57) is 37 + 57.
    assert.equal(t.p90(), 94);
    for (let i = 0; i < 63; i++) t.record(1);
    assert.equal(t.p90(), 1, 'one of the old times is left: the 90th percentile is a new one');
    t.record(1);
    assert.equal(t.p90(), 1);
  });
});

// Whether a checkpoint may continue under a run's plan: a longer (or shorter) schedule of the same
// data and flags may; any other difference is named flag by flag with both values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planFlagsOf, planMismatch, scheduleChange } from '../../src/data/fingerprint.ts';

const flags = planFlagsOf({
  batchSize: 8,
  microBatchSize: 4,
  numEpochs: 3,
  seed: 42,
  groupByLength: false,
  maxSteps: 10,
});

describe('plan mismatch', () => {
  it('lets only the schedule length change', () => {
    const longer = { ...flags, maxSteps: 20, numEpochs: 5 };
    assert.equal(planMismatch({ datasetSha: 'a', flags }, { datasetSha: 'a', flags: longer }), null);
    assert.equal(scheduleChange(flags, longer), '--num_epochs 5 (was 3), --max_steps 20 (was 10)');
  });

  it('names every other flag that differs, and different data', () => {
    const why = planMismatch(
      { datasetSha: 'aaaaaaaaaaaaaaaa', flags },
      { datasetSha: 'bbbbbbbbbbbbbbbb', flags: { ...flags, seed: 7, microBatchSize: 2, maxSteps: 30 } },
    );
    assert.match(why ?? '', /the tokenized data differ \(dataset aaaaaaaaaaaa then, bbbbbbbbbbbb now/);
    assert.match(why ?? '', /--micro_batch_size was 4, now 2/);
    assert.match(why ?? '', /--seed was 42, now 7/);
    assert.doesNotMatch(why ?? '', /max_steps/);
  });
});

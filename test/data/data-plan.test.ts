// The data plan: HF Trainer step arithmetic, determinism (any step rebuilt identically), per-epoch
// shuffles, every example exactly once per epoch, length grouping, padding and ids.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  buildDataPlan,
  buildEvalMicroBatches,
  groupByLength,
  megabatchSize,
} from '../../src/data/data-plan.ts';
import { datasetFingerprint, planFingerprint } from '../../src/data/fingerprint.ts';
import { collate, type MicroBatch, paddingOf } from '../../src/data/micro-batch.ts';
import { Rng } from '../../src/data/rng.ts';
import { splitTrainVal } from '../../src/data/split.ts';
import type { TokenizedExample } from '../../src/data/tokenize-example.ts';
import { FIXTURES } from './paths.ts';

/** Example i has length 1 + (i * 7919 % 61) and ids i*1000 + position, so rows are recognisable. */
function examples(n: number): TokenizedExample[] {
  return Array.from({ length: n }, (_, i) => {
    const len = 1 + ((i * 7919) % 61);
    const inputIds = Int32Array.from({ length: len }, (_, k) => i * 1000 + k);
    const labels = Int32Array.from(inputIds, (v, k) => (k < len / 2 ? -100 : v));
    return { inputIds, labels };
  });
}

const exampleOfRow = (mb: MicroBatch, r: number) => Math.floor(mb.inputIds[r * mb.seqLen]! / 1000);
const base = { batchSize: 16, microBatchSize: 4, numEpochs: 3, seed: 42, groupByLength: false };

describe('data plan', () => {
  it('counts steps as HF Trainer 5.x: ceil(ceil(n / micro) / grad_accum) per epoch', () => {
    const plan = buildDataPlan({ ...base, examples: examples(70) });
    assert.equal(plan.gradientAccumulationSteps, 4);
    assert.equal(plan.stepsPerEpoch, 5); // 18 micro-batches -> 4 full steps + one of 2
    assert.equal(plan.totalSteps, 15);
    assert.deepEqual(
      plan.microBatchesForStep(4).map((m) => m.rows),
      [4, 2],
    );
    // alpaca-lora defaults on the 49,760 training rows of alpaca-cleaned: 389 steps per epoch.
    const big = buildDataPlan({ ...base, batchSize: 128, examples: examples(49_760) });
    assert.equal(big.stepsPerEpoch, 389);
    assert.equal(buildDataPlan({ ...base, maxSteps: 7, examples: examples(70) }).totalSteps, 7);
  });

  it('visits every example exactly once per epoch, in a different order each epoch', () => {
    const plan = buildDataPlan({ ...base, examples: examples(70) });
    const orders: number[][] = [];
    for (let epoch = 0; epoch < 3; epoch++) {
      const seen: number[] = [];
      for (let s = 0; s < plan.stepsPerEpoch; s++)
        for (const mb of plan.microBatchesForStep(epoch * plan.stepsPerEpoch + s))
          for (let r = 0; r < mb.rows; r++) seen.push(exampleOfRow(mb, r));
      assert.deepEqual(
        [...seen].sort((a, b) => a - b),
        Array.from({ length: 70 }, (_, i) => i),
      );
      orders.push(seen);
    }
    assert.notDeepEqual(orders[0], orders[1]);
    assert.notDeepEqual(orders[1], orders[2]);
  });

  it('rebuilds any step identically, in another plan object, in any order', () => {
    const a = buildDataPlan({ ...base, groupByLength: true, examples: examples(70) });
    const b = buildDataPlan({ ...base, groupByLength: true, examples: examples(70) });
    for (const step of [14, 3, 9, 0, 14])
      assert.deepEqual(b.microBatchesForStep(step), a.microBatchesForStep(step));
    assert.notDeepEqual(
      buildDataPlan({ ...base, seed: 43, examples: examples(70) }).epochOrder(0),
      buildDataPlan({ ...base, examples: examples(70) }).epochOrder(0),
    );
  });

  it('gives micro-batch ids unique across the run: step * grad_accum + index', () => {
    const plan = buildDataPlan({ ...base, examples: examples(70) });
    const ids = Array.from({ length: plan.totalSteps }, (_, s) =>
      plan.microBatchesForStep(s).map((m) => m.id),
    ).flat();
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(
      plan.microBatchesForStep(2).map((m) => [m.id, m.step]),
      [
        [8, 2],
        [9, 2],
        [10, 2],
        [11, 2],
      ],
    );
    assert.throws(() => plan.microBatchesForStep(15), /step 15 is outside the plan \(0\.\.14\)/);
  });

  it('groups by length like HF LengthGroupedSampler: sorted megabatches, longest example first', () => {
    const lengths = [5, 9, 2, 7, 30, 1, 8, 3];
    const order = groupByLength([0, 1, 2, 3, 4, 5, 6, 7], lengths, 4);
    // megabatches [0,1,2,3] -> by length desc [1,3,0,2]; [4,5,6,7] -> [4,6,7,5]; longest (4) swapped to front.
    assert.deepEqual(order, [4, 3, 0, 2, 1, 6, 7, 5]);
  });

  it('orders a permutation exactly as HF transformers get_length_grouped_indices (ties included)', () => {
    const fixture = JSON.parse(readFileSync(`${FIXTURES}length-grouped.json`, 'utf8')) as {
      cases: { micro_batch_size: number; lengths: number[]; perm: number[]; order: number[] }[];
    };
    for (const c of fixture.cases)
      assert.deepEqual(
        groupByLength(c.perm, c.lengths, megabatchSize(c.lengths.length, c.micro_batch_size)),
        c.order,
        `n=${c.lengths.length} micro=${c.micro_batch_size}`,
      );
  });

  it('pads less with group_by_length, and puts the longest example in step 0', () => {
    const ex = examples(2000);
    const waste = (group: boolean) => {
      const plan = buildDataPlan({ ...base, numEpochs: 1, groupByLength: group, examples: ex });
      let pad = 0;
      for (let s = 0; s < plan.totalSteps; s++)
        for (const mb of plan.microBatchesForStep(s)) pad += paddingOf(mb);
      return pad;
    };
    assert.ok(waste(true) < waste(false) / 2, `${waste(true)} vs ${waste(false)}`);
    const plan = buildDataPlan({ ...base, groupByLength: true, examples: ex });
    assert.equal(plan.microBatchesForStep(0)[0]!.seqLen, 64); // longest is 61 -> padded to 64
  });

  it('fingerprints change with the data and with any plan flag', () => {
    const ex = examples(10);
    const fp = datasetFingerprint(ex);
    assert.equal(fp, datasetFingerprint(examples(10)));
    const other = examples(10);
    other[3]!.labels[0] = 5;
    assert.notEqual(datasetFingerprint(other), fp);
    assert.notEqual(planFingerprint(fp, base), planFingerprint(fp, { ...base, groupByLength: true }));
  });
});

describe('collate', () => {
  it('right-pads to a multiple of 8 with pad 0, labels -100 and mask 0', () => {
    const ex: TokenizedExample[] = [
      { inputIds: Int32Array.from([5, 6, 7]), labels: Int32Array.from([-100, 6, 7]) },
      {
        inputIds: Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]),
        labels: Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]),
      },
    ];
    const mb = collate(ex, [0, 1], { id: 3, step: 1 });
    assert.equal(mb.seqLen, 16);
    assert.deepEqual([...mb.inputIds.subarray(0, 16)], [5, 6, 7, ...new Array(13).fill(0)]);
    assert.deepEqual([...mb.labels.subarray(0, 16)], [-100, 6, 7, ...new Array(13).fill(-100)]);
    assert.deepEqual([...mb.attentionMask.subarray(16)], [...new Array(9).fill(1), ...new Array(7).fill(0)]);
    assert.equal(paddingOf(mb), 32 - 12);
  });

  it('makes evaluation micro-batches in dataset order with step -1', () => {
    const mbs = buildEvalMicroBatches(examples(10), 4);
    assert.deepEqual(
      mbs.map((m) => [m.id, m.step, m.rows, exampleOfRow(m, 0)]),
      [
        [0, -1, 4, 0],
        [1, -1, 4, 4],
        [2, -1, 2, 8],
      ],
    );
  });
});

describe('seeded split and RNG', () => {
  it('takes exactly N examples out, seeded, disjoint from training', () => {
    const s = splitTrainVal(100, 10, 42);
    assert.equal(s.val.length, 10);
    assert.equal(s.train.length, 90);
    assert.equal(new Set([...s.train, ...s.val]).size, 100);
    assert.deepEqual(splitTrainVal(100, 10, 42), s);
    assert.notDeepEqual(splitTrainVal(100, 10, 7).val, s.val);
    assert.throws(() => splitTrainVal(10, 10, 42), /val_set_size 10 leaves no training examples/);
  });

  it("is xoshiro128** 1.1: the reference implementation's first outputs from state {1, 2, 3, 4}", () => {
    const r = Rng.fromState(1, 2, 3, 4);
    const expected = [
      11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804,
    ];
    assert.deepEqual(
      expected.map(() => r.nextU32()),
      expected,
    );
  });

  it('draws the same numbers for the same key and different ones for another key', () => {
    const draw = (...key: number[]) => {
      const r = new Rng(...key);
      return Array.from({ length: 5 }, () => r.nextU32());
    };
    assert.deepEqual(draw(42, 1), draw(42, 1));
    assert.notDeepEqual(draw(42, 1), draw(42, 2));
    const r = new Rng(1);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[r.below(6)]++;
    for (const c of counts) assert.ok(Math.abs(c - 10_000) < 500, `${counts}`);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkContributions } from '../../src/coordinator/contribution-check.ts';
import { type WorkerId, workerId } from '../../src/coordinator/step-ledger.ts';

// The policy on the shard owners' measures. Each case's contributions are whole numbers whose norms
// are known by hand: contributor a's parts squared add to 9 + 16 = 25 (norm 5), and so on.
const [a, b, c] = ['a', 'b', 'c'].map(workerId) as [WorkerId, WorkerId, WorkerId];
const members = [a, b, c];

/** Owner k measured `sq[k][m]` for contributor m. */
const answers = (sq: number[][]) =>
  new Map(
    members.map((owner, k) => [
      owner,
      { contributions: members.map((m, i) => ({ member: m, sumSquares: sq[k]![i]! })) },
    ]),
  );
const selves = (normSums: number[], tokens = [10, 10, 10]) =>
  new Map(members.map((m, i) => [m, { normSum: normSums[i]!, tokens: tokens[i]! }]));

describe('checkContributions', () => {
  // Norms: a = 5 (9+16+0), b = 13 (25+144+0), c = 10 (36+64+0).
  const honest = [
    [9, 25, 36],
    [16, 144, 64],
    [0, 0, 0],
  ];

  it('accepts contributions no larger than their reported norms and close to each other', () => {
    assert.deepEqual(checkContributions(members, answers(honest), selves([5, 13, 10])), []);
    // The sum of several micro-batches' norms bounds the accumulator's from above.
    assert.deepEqual(checkContributions(members, answers(honest), selves([7, 20, 10.001])), []);
  });

  it('refuses a contribution larger than the norms its worker reported (a lying norm)', () => {
    const r = checkContributions(members, answers(honest), selves([5, 13, 9]));
    assert.deepEqual(
      r.map((x) => [x.worker, x.kind, x.measured]),
      [[c, 'lying_norm', 10]],
    );
    assert.match(r[0]!.why, /measures 10\.0 .* the 9\.00 its micro-batch norms add up to/);
  });

  it('refuses a contribution far above the median of the others, per supervised token', () => {
    // c: 1e30 per part, norm sqrt(2)*1e30 — honestly reported, still refused at factor 1000.
    const sq = honest.map((row) => [...row]);
    sq[0]![2] = 1e60;
    sq[1]![2] = 1e60;
    const r = checkContributions(members, answers(sq), selves([5, 13, 2e30]));
    assert.deepEqual(
      r.map((x) => [x.worker, x.kind]),
      [[c, 'outlier']],
    );
    assert.ok(Math.abs(r[0]!.measured - Math.SQRT2 * 1e30) < 1e16);
    // Per token: a worker with 10x the tokens may have a 10x larger norm at the same factor.
    const scaled = honest.map((row) => [row[0]!, row[1]!, row[2]! * 4e6]); // c's norm x 2000
    assert.deepEqual(
      checkContributions(members, answers(scaled), selves([5, 13, 2e4], [10, 10, 10])).length,
      1,
    );
    assert.deepEqual(checkContributions(members, answers(scaled), selves([5, 13, 2e4], [10, 10, 100])), []);
    // Factor 0: the outlier test is off, the lying-norm test is not.
    assert.deepEqual(checkContributions(members, answers(sq), selves([5, 13, 2e30]), 0), []);
    assert.equal(checkContributions(members, answers(sq), selves([5, 13, 1]), 0)[0]?.kind, 'lying_norm');
  });

  it('judges with two members (the other is the median) and never flags the smaller one', () => {
    const two = [a, b];
    const res = new Map([
      [
        a,
        {
          contributions: [
            { member: a, sumSquares: 1 },
            { member: b, sumSquares: 1e40 },
          ],
        },
      ],
      [
        b,
        {
          contributions: [
            { member: a, sumSquares: 0 },
            { member: b, sumSquares: 0 },
          ],
        },
      ],
    ]);
    const r = checkContributions(two, res, selves([1, 1e20]));
    assert.deepEqual(
      r.map((x) => [x.worker, x.kind]),
      [[b, 'outlier']],
    );
  });

  it('refuses an owner whose answer does not measure every contributor', () => {
    const res = answers(honest);
    res.set(b, { contributions: [] });
    const r = checkContributions(members, res, selves([5, 13, 10]));
    assert.deepEqual(
      r.map((x) => [x.worker, x.kind]),
      [[b, 'unmeasured']],
    );
    const reordered = answers(honest);
    const cs = reordered.get(c)!.contributions;
    reordered.set(c, { contributions: [cs[1]!, cs[0]!, cs[2]!] });
    assert.deepEqual(
      checkContributions(members, reordered, selves([5, 13, 10])).map((x) => x.worker),
      [c],
    );
  });
});

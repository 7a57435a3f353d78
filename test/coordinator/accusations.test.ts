import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Accusations, MAX_UNVERIFIED_PER_STEP } from '../../src/coordinator/accusations.ts';

function opened() {
  const a = new Accusations();
  a.opened({ step: 3, generation: 40, members: ['a', 'b', 'x'] });
  a.opened({ step: 3, generation: 41, members: ['a', 'b', 'x'] });
  a.opened({ step: 4, generation: 42, members: ['a', 'x'] });
  return a;
}

describe('accusations', () => {
  it('calls false every blame that names no real round of its step or a non-member', () => {
    const cases: [string, string, number, number, RegExp][] = [
      ['x', 'a', 3, 900_010, /never opened/],
      ['x', 'a', 3, 39, /never opened/],
      ['x', 'a', 4, 41, /step 3, not 4/],
      ['x', 'b', 4, 42, /b was not a member/],
      ['c', 'a', 3, 41, /c was not a member/],
    ];
    for (const [accuser, accused, step, generation, why] of cases) {
      const v = opened().judge(accuser, accused, step, generation);
      assert.equal(v.kind, 'false', `${accuser} blames ${accused} for ${step}/${generation}`);
      assert.match(v.kind === 'false' ? v.why : '', why);
    }
  });

  it('finds a blame for a real round unverifiable, and penalises the accuser at the limit only', () => {
    const a = opened();
    const verdicts = Array.from({ length: MAX_UNVERIFIED_PER_STEP }, (_, i) =>
      a.judge('x', i % 2 ? 'a' : 'b', 3, 41),
    );
    assert.deepEqual(
      verdicts.map((v) => (v.kind === 'unverifiable' ? [v.count, v.penalise] : v.kind)),
      Array.from({ length: MAX_UNVERIFIED_PER_STEP }, (_, i) => [i + 1, i + 1 === MAX_UNVERIFIED_PER_STEP]),
    );
    // Another accuser, and a late blame for the aborted generation 40 of the same step, count apart.
    assert.deepEqual(a.judge('a', 'x', 3, 40), { kind: 'unverifiable', count: 1, penalise: false });
  });

  it('starts counting again after the step commits', () => {
    const a = opened();
    for (let i = 1; i < MAX_UNVERIFIED_PER_STEP; i++) a.judge('x', 'a', 3, 41);
    a.committed(3);
    assert.deepEqual(a.judge('x', 'a', 3, 41), { kind: 'unverifiable', count: 1, penalise: false });
  });

  it('forgets the oldest rounds beyond the ones it keeps', () => {
    const a = new Accusations();
    for (let g = 1; g <= 300; g++) a.opened({ step: g, generation: g, members: ['a', 'x'] });
    assert.equal(a.judge('x', 'a', 1, 1).kind, 'false');
    assert.equal(a.judge('x', 'a', 300, 300).kind, 'unverifiable');
  });
});

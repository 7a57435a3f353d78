import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_UNATTRIBUTED_NONFINITE,
  OFFENCES_BEFORE_DROP,
  Offences,
  penalty,
} from '../../src/coordinator/offences.ts';
import { rng } from '../model/support/tiny-mpt.ts';

describe('offence policy', () => {
  it('resets the session below OFFENCES_BEFORE_DROP refused results and drops the worker from it on', () => {
    const table: [number, boolean][] = [
      [1, false],
      [OFFENCES_BEFORE_DROP - 1, false],
      [OFFENCES_BEFORE_DROP, true],
      [OFFENCES_BEFORE_DROP + 1, true],
    ];
    for (const [n, dropped] of table) assert.deepEqual(penalty(n), { offences: n, dropped }, `offence ${n}`);
  });

  it("counts each worker's refused results on its own and keeps the dropped ones", () => {
    const o = new Offences();
    assert.deepEqual(o.refuse('a'), { offences: 1, dropped: false });
    assert.deepEqual(o.refuse('b'), { offences: 1, dropped: false });
    assert.deepEqual(o.refuse('a'), { offences: 2, dropped: true });
    assert.deepEqual([...o.dropped], ['a']);
    assert.equal(o.of('b'), 1);
    assert.equal(o.of('never'), 0);
  });

  it('acts on a blame once per generation and worker, however many members report it', () => {
    const o = new Offences();
    assert.equal(o.blame('a', 7), true);
    assert.equal(o.blame('a', 7), false, 'the same round, heard from another member');
    assert.equal(o.blame('b', 7), true, 'another worker of the same round');
    assert.equal(o.blame('a', 8), true, 'the same worker in a later round');
  });

  it('retries a non-finite sum nobody can be blamed for and stops the run at the limit in a row', () => {
    const o = new Offences();
    const verdicts = Array.from({ length: MAX_UNATTRIBUTED_NONFINITE }, () => o.nonFiniteSum());
    assert.deepEqual(
      verdicts.map((v) => v.verdict),
      [...Array(MAX_UNATTRIBUTED_NONFINITE - 1).fill('retry'), 'stop'],
    );
    assert.equal(verdicts.at(-1)!.count, MAX_UNATTRIBUTED_NONFINITE);
  });

  it('starts the non-finite count again after a commit', () => {
    const o = new Offences();
    for (let i = 1; i < MAX_UNATTRIBUTED_NONFINITE; i++) o.nonFiniteSum();
    o.committed();
    assert.deepEqual(o.nonFiniteSum(), { count: 1, verdict: 'retry' });
  });

  it('keeps its invariants over a seeded random sequence of refusals, blames, sums and commits', () => {
    const random = rng(20);
    const workers = ['a', 'b', 'c', 'd'];
    const o = new Offences();
    const counts = new Map<string, number>();
    const blamed = new Set<string>();
    let streak = 0;
    for (let i = 0; i < 2000; i++) {
      const w = workers[Math.floor(random() * workers.length)]!;
      const op = random();
      if (op < 0.3) {
        const p = o.refuse(w);
        counts.set(w, (counts.get(w) ?? 0) + 1);
        assert.equal(p.offences, counts.get(w));
        assert.equal(p.dropped, p.offences >= OFFENCES_BEFORE_DROP);
      } else if (op < 0.6) {
        const g = Math.floor(random() * 5);
        assert.equal(o.blame(w, g), !blamed.has(`${g}:${w}`), `blame ${w} in generation ${g}`);
        blamed.add(`${g}:${w}`);
      } else if (op < 0.8) {
        streak++;
        const s = o.nonFiniteSum();
        assert.deepEqual(s, {
          count: streak,
          verdict: streak >= MAX_UNATTRIBUTED_NONFINITE ? 'stop' : 'retry',
        });
      } else {
        o.committed();
        streak = 0;
      }
      // After every operation: dropped = exactly the workers at or past the limit.
      const expected = workers.filter((x) => (counts.get(x) ?? 0) >= OFFENCES_BEFORE_DROP);
      assert.deepEqual([...o.dropped].sort(), expected, `after operation ${i}`);
      for (const x of workers) assert.equal(o.of(x), counts.get(x) ?? 0);
    }
  });
});

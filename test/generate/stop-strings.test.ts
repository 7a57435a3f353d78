// Stop strings over a scripted answer (token i adds the i-th piece of text): the cut answer, when
// decoding may stop, and what may be streamed at each step — never any part of a stop string.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AnswerText } from '../../src/generate/answer-text.ts';
import { firstStop, partialStop, withStopStrings } from '../../src/generate/stop-strings.ts';

/** A raw answer whose tokens are indices into `pieces`. */
function scripted(pieces: readonly string[]): AnswerText {
  const text = (tokens: readonly number[]) => tokens.map((t) => pieces[t]).join('');
  return { full: text, stable: text, ended: () => false };
}

/** The stable text after each step of generating all of `pieces`. */
function streamed(answer: AnswerText, pieces: readonly string[]): string[] {
  return pieces.map((_, n) => answer.stable(Array.from({ length: n + 1 }, (_, i) => i)));
}

describe('stop strings', () => {
  it('finds the earliest occurrence of any stop string', () => {
    assert.equal(firstStop('one two three', ['three', 'two']), 4);
    assert.equal(firstStop('one two three', ['four']), -1);
  });

  it('measures the longest tail that could still become a stop string', () => {
    assert.equal(partialStop('the end', ['ending', 'x']), 3);
    assert.equal(partialStop('the end', ['dx', 'endx']), 3);
    assert.equal(partialStop('the end', ['xyz']), 0);
    assert.equal(partialStop('the end', ['end']), 0, 'a whole stop string is no partial one');
  });

  it('cuts the answer before the first stop string and ends there', () => {
    const pieces = ['Hel', 'lo ', 'wor', 'ld', '!'];
    const answer = withStopStrings(scripted(pieces), ['o w', 'ld']);
    assert.equal(answer.full([0, 1, 2, 3, 4]), 'Hell');
    assert.equal(answer.ended([0, 1]), false);
    assert.equal(answer.ended([0, 1, 2]), true);
  });

  it('streams no part of a stop string that spans pieces, and the steps add up to the cut answer', () => {
    const pieces = ['Hel', 'lo ', 'wor', 'ld', '!'];
    const steps = streamed(withStopStrings(scripted(pieces), ['o w']), pieces);
    assert.deepEqual(steps, ['Hel', 'Hell', 'Hell', 'Hell', 'Hell']);
  });

  it('releases a held-back tail once it can no longer start a stop string', () => {
    const pieces = ['a', 'b', 'x', 'y'];
    const steps = streamed(withStopStrings(scripted(pieces), ['abc']), pieces);
    assert.deepEqual(steps, ['', '', 'abx', 'abxy']);
  });

  it('changes nothing without stop strings', () => {
    const inner = scripted(['a']);
    assert.equal(withStopStrings(inner, []), inner);
  });
});

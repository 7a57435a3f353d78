// OpenAI's `stop` (transformers' stop_strings): the answer ends just before the first occurrence of
// any stop string, which is not returned. Applied as a layer over an AnswerText, so the engine's
// streaming contract holds: `stable` also holds back any tail that could still grow into a stop
// string, hence streamed text never shows part of one and its deltas still add up to `full`.
import type { AnswerText } from './answer-text.ts';

/** Where the earliest occurrence of any of `stops` starts in `text`, or -1. */
export function firstStop(text: string, stops: readonly string[]): number {
  let first = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (first < 0 || i < first)) first = i;
  }
  return first;
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string, else 0. */
export function partialStop(text: string, stops: readonly string[]): number {
  let longest = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > longest; n--) {
      if (text.endsWith(s.slice(0, n))) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

/** `answer` cut at its first stop string; `ended` once one occurs (decoding can stop there). */
export function withStopStrings(answer: AnswerText, stops: readonly string[]): AnswerText {
  if (stops.length === 0) return answer;
  const cut = (text: string) => {
    const i = firstStop(text, stops);
    return i < 0 ? text : text.slice(0, i);
  };
  return {
    full: (tokens) => cut(answer.full(tokens)),
    stable(tokens) {
      const full = answer.full(tokens);
      const i = firstStop(full, stops);
      if (i >= 0) return full.slice(0, i);
      // No stop yet, so none lies inside `stable` (a prefix of `full`); only its tail may start one.
      const stable = answer.stable(tokens);
      return stable.slice(0, stable.length - partialStop(stable, stops));
    },
    ended: (tokens) => answer.ended(tokens) || firstStop(answer.full(tokens), stops) >= 0,
  };
}

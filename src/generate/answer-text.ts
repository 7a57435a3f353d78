// The text a user sees for a list of generated tokens. For an instruction (the prompt template
// applied) it is the seed's `prompter.get_response(decode(prompt + new))`: what follows the
// template's response marker (the prompt's last one: a conversation has one per exchange), trimmed,
// up to the next. For a raw completion it is the decoded new tokens. `stable` is the part that later
// tokens can no longer change (no partial marker, no half of a multi-byte character, no trailing
// space): streamed deltas are cut from it, so their concatenation always equals the final text.
import type { PromptTemplate } from '../data/prompt-template.ts';
import type { Tokenizer } from '../data/tokenizer.ts';

export interface AnswerText {
  /** The answer as the seed prints it. */
  full(tokens: readonly number[]): string;
  /** A prefix of every later `full`: safe to stream. */
  stable(tokens: readonly number[]): string;
  /** True when nothing more can join the answer (the response marker came again). */
  ended(tokens: readonly number[]): boolean;
}

const REPLACEMENT = '\uFFFD';

function withoutBrokenTail(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === REPLACEMENT) end--;
  return text.slice(0, end);
}

/** Length of the longest suffix of `text` that starts `marker` (case-insensitive), else 0. */
function partialMarker(text: string, marker: string): number {
  const t = text.toLowerCase();
  const m = marker.toLowerCase();
  for (let n = Math.min(m.length - 1, t.length); n > 0; n--) if (t.endsWith(m.slice(0, n))) return n;
  return 0;
}

export function instructionAnswer(
  tokenizer: Tokenizer,
  template: PromptTemplate,
  promptIds: readonly number[],
): AnswerText {
  // The same rule as getResponse (src/data/prompt-template.ts): split on the marker, case-insensitive.
  // A conversation's prompt holds one marker per exchange: the answer follows the prompt's last one
  // (for one instruction, the first, as getResponse).
  const marker = new RegExp(template.responseSplit, 'gi');
  const at = Math.max(1, tokenizer.decode(promptIds).split(marker).length - 1);
  const parts = (tokens: readonly number[]) => tokenizer.decode([...promptIds, ...tokens]).split(marker);
  return {
    full: (tokens) => (parts(tokens)[at] ?? '').trim(),
    stable(tokens) {
      const p = parts(tokens);
      if (p.length > at + 1) return (p[at] as string).trim();
      let body = withoutBrokenTail(p[at] ?? '');
      body = body.slice(0, body.length - partialMarker(body, template.responseSplit));
      return body.trim();
    },
    ended: (tokens) => parts(tokens).length > at + 1,
  };
}

export function rawAnswer(tokenizer: Tokenizer): AnswerText {
  return {
    full: (tokens) => tokenizer.decode(tokens),
    stable: (tokens) => withoutBrokenTail(tokenizer.decode(tokens)),
    ended: () => false,
  };
}

// A chat conversation written onto an Alpaca template, one instruction/response turn per exchange.
// The template's prompt_no_input is split at the last "\n\n" before {instruction} into a preamble
// ("Below is an instruction ...") and a turn ("### Instruction:\n{instruction}\n\n### Response:\n"):
//   prompt = preamble + "\n\n" + turn(u1) + a1 + "\n\n" + turn(u2) + a2 + "\n\n" + … + turn(u_last)
// with a system message, if any, in place of the preamble. One user message alone is formatPrompt.
import { type PromptTemplate, pythonFormat } from './prompt-template.ts';

export interface Conversation {
  /** Replaces the template's preamble; null keeps it. */
  readonly system: string | null;
  /** user, assistant, user, …, user: an odd count, starting and ending with the user. */
  readonly messages: readonly string[];
}

/** The template's prompt_no_input cut into what comes once and what comes every exchange. */
export interface TurnStructure {
  readonly preamble: string;
  /** Raw template text with {instruction}, ending where the response starts. */
  readonly turn: string;
}

const SEPARATOR = '\n\n';

/** A conversation the template cannot hold: it has no preamble/turn split. */
export class NoTurnStructureError extends Error {
  override name = 'NoTurnStructureError';
}

/** The split, or null when prompt_no_input has no "\n\n" before {instruction} or is not rebuilt by it. */
export function turnStructure(t: PromptTemplate): TurnStructure | null {
  const field = t.promptNoInput.indexOf('{instruction}');
  const cut = field < 0 ? -1 : t.promptNoInput.lastIndexOf(SEPARATOR, field);
  if (cut < 0) return null;
  const preambleText = t.promptNoInput.slice(0, cut);
  const turn = t.promptNoInput.slice(cut + SEPARATOR.length);
  let preamble: string;
  try {
    preamble = pythonFormat(preambleText, {}, `${t.source} prompt_no_input`);
  } catch {
    return null; // a field (or a lone brace) in the preamble: the cut is not between two parts
  }
  // The cut must give back the template exactly (an escaped "{{instruction}}" would not).
  const probe = 'PROBE\u0000';
  const whole = pythonFormat(t.promptNoInput, { instruction: probe }, `${t.source} prompt_no_input`);
  const rebuilt = preamble + SEPARATOR + pythonFormat(turn, { instruction: probe }, `${t.source} turn`);
  return rebuilt === whole ? { preamble, turn } : null;
}

/** The prompt text of a conversation; NoTurnStructureError when the template has no turns. */
export function formatConversation(t: PromptTemplate, c: Conversation): string {
  const s = turnStructure(t);
  if (s === null) {
    throw new NoTurnStructureError(
      `prompt template ${t.source} has no turn structure (no "\\n\\n" before {instruction} in prompt_no_input): it holds one user message and no system message`,
    );
  }
  let text = (c.system ?? s.preamble) + SEPARATOR;
  for (const [i, m] of c.messages.entries()) {
    text += i % 2 === 0 ? pythonFormat(s.turn, { instruction: m }, `${t.source} turn`) : m + SEPARATOR;
  }
  return text;
}

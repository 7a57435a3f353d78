// One Alpaca record -> training ids and labels, with the semantics of alpaca-lora's `tokenize` and
// `generate_and_tokenize_prompt` (finetune.py), for MPT: right truncation at cutoff_len, EOS when it
// fits, and with train_on_inputs=false the prompt masked with -100 by the add_eos_token rule.
import { formatPrompt, type PromptTemplate } from './prompt-template.ts';

/** The label of tokens that carry no loss (PyTorch's CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;

export interface AlpacaFields {
  readonly instruction: string;
  readonly input: string;
  readonly output: string;
}

export interface TokenizedExample {
  readonly inputIds: Int32Array;
  /** Same length as inputIds; IGNORE_INDEX where the token is not supervised. */
  readonly labels: Int32Array;
}

export interface TokenizeOptions {
  readonly cutoffLen: number;
  readonly trainOnInputs: boolean;
  /** alpaca-lora's --add_eos_token: only changes how the prompt part is measured for masking. */
  readonly addEosToken: boolean;
  /** GPT-NeoX / MPT: 0 (<|endoftext|>). */
  readonly eosTokenId: number;
}

export interface Encoder {
  encode(text: string): number[];
}

/** alpaca-lora's `tokenize`: truncate to cutoff; append EOS if asked, not already last, and it fits. */
export function tokenizeText(encoder: Encoder, text: string, addEos: boolean, o: TokenizeOptions): number[] {
  const ids = encoder.encode(text).slice(0, o.cutoffLen);
  if (addEos && ids[ids.length - 1] !== o.eosTokenId && ids.length < o.cutoffLen) ids.push(o.eosTokenId);
  return ids;
}

/**
 * alpaca-lora's `generate_and_tokenize_prompt`. The full text (prompt + response) always gets the
 * EOS rule. With trainOnInputs=false the first `promptLen` labels become -100, where promptLen is
 * the length of the prompt alone tokenized with EOS iff addEosToken, minus 1 iff addEosToken. The
 * minus one applies even when the prompt was truncated and got no EOS (alpaca-lora does the same),
 * so such an example keeps exactly one supervised token: its last.
 */
export function tokenizeExample(
  encoder: Encoder,
  template: PromptTemplate,
  r: AlpacaFields,
  o: TokenizeOptions,
): TokenizedExample {
  const full = tokenizeText(encoder, formatPrompt(template, r.instruction, r.input, r.output), true, o);
  const labels = Int32Array.from(full);
  if (!o.trainOnInputs) {
    const user = tokenizeText(encoder, formatPrompt(template, r.instruction, r.input), o.addEosToken, o);
    // Python's [-100] * n + labels[n:] would make labels longer than input_ids if n > len(full);
    // that cannot happen for a prompt that is a prefix of the full text, and we clamp if it does.
    const n = Math.min(user.length - (o.addEosToken ? 1 : 0), full.length);
    labels.fill(IGNORE_INDEX, 0, Math.max(0, n));
  }
  return { inputIds: Int32Array.from(full), labels };
}

/** Number of supervised tokens (labels != -100). */
export function supervisedTokens(e: TokenizedExample): number {
  let n = 0;
  for (const l of e.labels) if (l !== IGNORE_INDEX) n++;
  return n;
}

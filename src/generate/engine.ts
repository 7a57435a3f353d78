// One loaded model (+ adapter) that answers requests: builds the prompt (the Alpaca template for an
// instruction or a conversation, or raw text), tokenizes it, checks it fits the context, decodes with the KV cache and
// reports the answer as the seed's generate.py shows it. Requests may run concurrently (each has its
// own cache; the weights are read-only), but callers queue them (src/serve/fair-queue.ts).
import { type Conversation, formatConversation } from '../data/conversation.ts';
import { formatPrompt, type PromptTemplate } from '../data/prompt-template.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import type { CausalLm } from '../model/causal-lm.ts';
import { type AnswerText, instructionAnswer, rawAnswer } from './answer-text.ts';
import { type DecodingOptions, decode, type FinishReason } from './decode.ts';
import { cachedLogits } from './logits-source.ts';
import { firstStop, withStopStrings } from './stop-strings.ts';

export type PromptSpec =
  | { readonly kind: 'instruction'; readonly instruction: string; readonly input: string }
  | ({ readonly kind: 'conversation' } & Conversation)
  | { readonly kind: 'raw'; readonly text: string };

export interface DecodingRequest extends Omit<DecodingOptions, 'eosTokenId'> {
  /** The answer ends before the first of these (OpenAI's `stop`); none when absent or empty.
   * Greedy and sampling stop decoding there; beam search runs to its own end, then is cut. */
  readonly stopStrings?: readonly string[];
}

export interface GenerationResult {
  /** The answer (instruction: after the response marker, trimmed; raw: the new text). */
  readonly text: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly finishReason: FinishReason;
  /** The sampling seed (null unless sampling). */
  readonly seed: number | null;
  /** max_new_tokens was lowered so that prompt + answer fit max_seq_len. */
  readonly limitedByContext: boolean;
}

export interface GenerationHooks {
  /** After each step: the stable answer so far (each call's text extends the previous one's) and,
   * for what a page shows, the whole current answer (beam search: the leading beam's). */
  readonly onText?: (stable: string, current: string) => void;
  readonly signal?: AbortSignal;
}

/** An empty prompt, or one that leaves no room for an answer (the message names both lengths). */
export class PromptTooLongError extends Error {
  override name = 'PromptTooLongError';
}

export interface EngineParts {
  readonly model: CausalLm;
  readonly tokenizer: Tokenizer;
  readonly template: PromptTemplate;
  /** Decoding stops at this token (GPT-NeoX: <|endoftext|>); null: only at max_new_tokens. */
  readonly eosTokenId: number | null;
  /** What the model is called in API answers, e.g. the --base_model (+ adapter) given. */
  readonly name: string;
}

export class GenerationEngine {
  constructor(readonly parts: EngineParts) {}

  get name(): string {
    return this.parts.name;
  }

  get contextLength(): number {
    return this.parts.model.config.maxSeqLen;
  }

  /** Frees the model's tensors. */
  dispose(): void {
    this.parts.model.dispose();
  }

  /** The text the model reads for `prompt`. */
  promptText(prompt: PromptSpec): string {
    if (prompt.kind === 'raw') return prompt.text;
    if (prompt.kind === 'conversation') return formatConversation(this.parts.template, prompt);
    return formatPrompt(this.parts.template, prompt.instruction, prompt.input);
  }

  /** The prompt's token ids; PromptTooLongError when it leaves no room for an answer,
   * NoTurnStructureError for a conversation the template cannot hold. */
  promptIds(prompt: PromptSpec): number[] {
    const ids = this.parts.tokenizer.encode(this.promptText(prompt));
    const context = this.contextLength;
    if (ids.length === 0)
      throw new PromptTooLongError('the prompt is empty: give an instruction or a prompt');
    if (ids.length >= context) {
      throw new PromptTooLongError(
        `the prompt has ${ids.length} tokens and the model's context (max_seq_len) is ${context}, which leaves no room for an answer: shorten the instruction or input`,
      );
    }
    return ids;
  }

  async generate(
    prompt: PromptSpec,
    decoding: DecodingRequest,
    hooks: GenerationHooks = {},
  ): Promise<GenerationResult> {
    const { model, tokenizer, template, eosTokenId } = this.parts;
    const { stopStrings = [], ...options } = decoding;
    const ids = this.promptIds(prompt);
    const context = model.config.maxSeqLen;
    const maxNewTokens = Math.min(decoding.maxNewTokens, context - ids.length);
    const uncut: AnswerText =
      prompt.kind === 'raw' ? rawAnswer(tokenizer) : instructionAnswer(tokenizer, template, ids);
    const answer = withStopStrings(uncut, stopStrings);
    const source = cachedLogits(model);
    try {
      const out = await decode(
        source,
        Int32Array.from(ids),
        { ...options, maxNewTokens, eosTokenId },
        {
          onStep: (tokens) => hooks.onText?.(answer.stable(tokens), answer.full(tokens)),
          shouldStop: (tokens) => answer.ended(tokens),
          ...(hooks.signal ? { signal: hooks.signal } : {}),
        },
      );
      // Beam search does not stop at a stop string; its answer cut at one ended there all the same.
      const cut = out.finishReason === 'length' && firstStop(uncut.full(out.tokens), stopStrings) >= 0;
      return {
        text: answer.full(out.tokens),
        promptTokens: ids.length,
        completionTokens: out.tokens.length,
        finishReason: cut ? 'stop' : out.finishReason,
        seed: out.seed,
        limitedByContext: maxNewTokens < decoding.maxNewTokens,
      };
    } finally {
      source.dispose();
    }
  }
}

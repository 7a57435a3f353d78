// The decoding loop of one prompt, as transformers' `generate` chooses it: greedy (num_beams 1,
// no sampling), multinomial sampling (temperature / top-k / top-p warpers, seeded), or beam search
// (num_beams > 1). It stops at EOS (kept in the output, as transformers keeps it), at max_new_tokens,
// or when the caller's signal aborts; between steps it yields to the event loop so a server stays
// responsive and notices disconnects.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { beamCandidates } from './beam-candidates.ts';
import { BeamSearch } from './beam-search.ts';
import { hostRows, type LogitsSource } from './logits-source.ts';
import { argmax, warpLogits } from './logits-warpers.ts';
import { requestRng, sampleToken } from './sample.ts';

export interface DecodingOptions {
  readonly maxNewTokens: number;
  /** 1 = greedy or sampling; > 1 = beam search (without sampling). */
  readonly numBeams: number;
  /** Sample instead of taking the most likely token (num_beams 1 only). */
  readonly doSample: boolean;
  readonly temperature: number;
  /** 0 = off. */
  readonly topK: number;
  /** 1 = off. */
  readonly topP: number;
  /** Sampling seed; null = a random one (reported back). */
  readonly seed: number | null;
  readonly eosTokenId: number | null;
  readonly lengthPenalty: number;
  readonly earlyStopping: boolean | 'never';
}

/** transformers' GenerationConfig defaults where lora-mpt has no reason to differ. */
export const TRANSFORMERS_DEFAULTS = { lengthPenalty: 1.0, earlyStopping: false } as const;

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface DecodeHooks {
  /** After every step: the tokens generated so far (beam search: the leading beam's). */
  readonly onStep?: (tokens: readonly number[]) => void;
  /** Greedy and sampling: end with finishReason 'stop' when this holds (nothing more can join the
   * answer). Beam search always runs to its own end. */
  readonly shouldStop?: (tokens: readonly number[]) => boolean;
  /** Aborting ends the loop after the current step with finishReason 'cancelled'. */
  readonly signal?: AbortSignal;
}

export interface DecodeResult {
  /** The new tokens (EOS included when it ended the answer). */
  readonly tokens: readonly number[];
  readonly finishReason: FinishReason;
  /** The sampling seed used (null unless sampling). */
  readonly seed: number | null;
}

export async function decode(
  source: LogitsSource,
  prompt: Int32Array,
  o: DecodingOptions,
  hooks: DecodeHooks = {},
): Promise<DecodeResult> {
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1)
    throw new Error(`max_new_tokens ${o.maxNewTokens}: expected a whole number >= 1`);
  if (o.numBeams > 1 && o.doSample)
    throw new Error('beam search with sampling is not supported: use num_beams 1 to sample');
  return o.numBeams > 1 ? beamDecode(source, prompt, o, hooks) : stepDecode(source, prompt, o, hooks);
}

async function stepDecode(
  source: LogitsSource,
  prompt: Int32Array,
  o: DecodingOptions,
  hooks: DecodeHooks,
): Promise<DecodeResult> {
  const drawn = o.doSample ? requestRng(o.seed) : null;
  const tokens: number[] = [];
  let logits = source.start(prompt);
  for (;;) {
    const row = (await hostRows(logits))[0] as Float32Array;
    const token = drawn === null ? argmax(row) : sampleToken(warpLogits(row, o), drawn.rng);
    tokens.push(token);
    hooks.onStep?.(tokens);
    const seed = drawn?.seed ?? null;
    if (token === o.eosTokenId || hooks.shouldStop?.(tokens)) return { tokens, finishReason: 'stop', seed };
    if (tokens.length >= o.maxNewTokens) return { tokens, finishReason: 'length', seed };
    await nextTurn();
    if (hooks.signal?.aborted) return { tokens, finishReason: 'cancelled', seed };
    logits = source.next(Int32Array.of(0), Int32Array.of(token));
  }
}

async function beamDecode(
  source: LogitsSource,
  prompt: Int32Array,
  o: DecodingOptions,
  hooks: DecodeHooks,
): Promise<DecodeResult> {
  const search = new BeamSearch(o);
  // The prompt is the same in every beam: one forward, its row standing for each.
  let logits = source.start(prompt);
  for (;;) {
    const next = search.step(await beamCandidates(logits, search.scores, search.keep));
    hooks.onStep?.(search.done ? search.best : search.leader);
    if (search.done) break;
    await nextTurn();
    if (hooks.signal?.aborted) return { tokens: search.leader, finishReason: 'cancelled', seed: null };
    logits = source.next(next.parents, next.tokens);
  }
  const tokens = search.best;
  const finishReason = tokens.length > 0 && tokens[tokens.length - 1] === o.eosTokenId ? 'stop' : 'length';
  return { tokens, finishReason, seed: null };
}

// The three request bodies the server takes, validated into one shape: OpenAI's /v1/completions
// (raw prompt) and /v1/chat/completions (messages, the Alpaca template applied per turn), and the web
// page's /api/generate (generate.py's fields). OpenAI semantics: temperature 0 decodes greedily,
// above 0 samples; the extensions num_beams (beam search, needs temperature 0) and top_k exist too;
// `stop` ends the answer before the first of up to 4 strings.
// The page follows generate.py: beam search when Beams > 1, greedy otherwise, sampling only when
// its "Sample" box is ticked (generate.py never samples).
import { TRANSFORMERS_DEFAULTS } from '../generate/decode.ts';
import type { DecodingRequest, PromptSpec } from '../generate/engine.ts';
import { parseChatMessages } from './chat-messages.ts';
import { BadRequestError, RequestFields } from './request-fields.ts';

export interface ParsedRequest {
  readonly prompt: PromptSpec;
  readonly decoding: DecodingRequest;
  readonly stream: boolean;
  /** OpenAI's `user`: whose turn it is in the fair queue (else the client's address). */
  readonly user: string | null;
  /** Also send a usage chunk at the end of a stream (stream_options.include_usage). */
  readonly includeUsage: boolean;
}

const MAX_BEAMS = 8;
/** OpenAI's limit on stop strings. */
const MAX_STOP_STRINGS = 4;

/** generate.py's evaluate() defaults (../shared/docs/mpt-peft-facts.md §4.8), the page's too. */
export const PAGE_DEFAULTS = {
  temperature: 0.1,
  top_p: 0.75,
  top_k: 40,
  num_beams: 4,
  max_new_tokens: 128,
  stream: false,
} as const;

function unsupportedOpenAiFields(f: RequestFields): void {
  f.raw('model'); // any name: this server holds one model
  f.neutral('n', [1], 'one choice per request');
  f.neutral('best_of', [1], 'one choice per request');
  f.neutral('echo', [false], 'the prompt is not echoed');
  f.neutral('logprobs', [false, 0], 'log-probabilities are not returned');
  f.neutral('top_logprobs', [0], 'log-probabilities are not returned');
  f.neutral('presence_penalty', [0], 'penalties are not implemented');
  f.neutral('frequency_penalty', [0], 'penalties are not implemented');
  f.neutral('logit_bias', [{}], 'logit biases are not implemented');
  f.neutral('suffix', [''], 'suffixes are not implemented');
}

/** OpenAI's `stop`: one string or an array of up to 4 non-empty ones; null or [] means none. */
function stopStrings(f: RequestFields): readonly string[] {
  const v = f.raw('stop');
  if (v === undefined) return [];
  if (typeof v === 'string') {
    if (v === '')
      throw new BadRequestError('stop', 'stop must not be empty: leave it out for no stop string');
    return [v];
  }
  if (!Array.isArray(v)) {
    throw new BadRequestError(
      'stop',
      `stop must be a string or an array of up to ${MAX_STOP_STRINGS} strings, got ${JSON.stringify(v)}`,
    );
  }
  if (v.length > MAX_STOP_STRINGS) {
    throw new BadRequestError('stop', `stop holds at most ${MAX_STOP_STRINGS} strings, got ${v.length}`);
  }
  for (const [i, s] of v.entries()) {
    if (typeof s !== 'string' || s === '') {
      throw new BadRequestError(
        `stop[${i}]`,
        `stop[${i}] must be a non-empty string, got ${JSON.stringify(s)}`,
      );
    }
  }
  return v as string[];
}

/** OpenAI decoding fields → decoding options (maxTokens already read). */
function openAiDecoding(f: RequestFields, maxNewTokens: number): DecodingRequest {
  const temperature = f.number('temperature', 1, 0, 2);
  const topP = f.number('top_p', 1, Number.MIN_VALUE, 1, 'a number in (0, 1]');
  const topK = f.integer('top_k', 0, 0, 1_000_000);
  const numBeams = f.integer('num_beams', 1, 1, MAX_BEAMS);
  const seed = f.raw('seed') === undefined ? null : f.integer('seed', 0, 0, 2 ** 31 - 1);
  const stop = stopStrings(f);
  if (numBeams > 1 && temperature > 0) {
    throw new BadRequestError(
      'num_beams',
      'num_beams > 1 is beam search, which does not sample: set temperature to 0',
    );
  }
  return {
    maxNewTokens,
    numBeams,
    doSample: temperature > 0 && numBeams === 1,
    temperature: temperature > 0 ? temperature : 1,
    topK,
    topP,
    seed,
    stopStrings: stop,
    ...TRANSFORMERS_DEFAULTS,
  };
}

function streamOptions(f: RequestFields, stream: boolean): boolean {
  const o = f.raw('stream_options');
  if (o === undefined) return false;
  if (!stream) throw new BadRequestError('stream_options', 'stream_options needs stream: true');
  if (typeof o !== 'object' || Array.isArray(o))
    throw new BadRequestError('stream_options', 'must be an object');
  const inner = RequestFields.of(o);
  const usage = inner.boolean('include_usage', false);
  inner.done();
  return usage;
}

/** OpenAI's response_format: plain text is what this server makes; structured output it cannot
 * promise, so asking for it is a 400 rather than JSON that might not parse. */
function responseFormat(f: RequestFields): void {
  const o = f.raw('response_format');
  if (o === undefined || o === null) return;
  if (typeof o !== 'object' || Array.isArray(o))
    throw new BadRequestError('response_format', 'response_format must be an object like {"type": "text"}');
  const inner = RequestFields.of(o);
  const type = inner.raw('type');
  if (type === 'json_object' || type === 'json_schema') {
    throw new BadRequestError(
      'response_format.type',
      `response_format.type "${type}" is not supported: this server decodes free text with no grammar, so it cannot promise JSON; send {"type": "text"} or leave response_format out`,
    );
  }
  if (type !== 'text') {
    throw new BadRequestError(
      'response_format.type',
      `response_format.type must be "text", got ${JSON.stringify(type ?? null)}`,
    );
  }
  inner.done();
}

function user(f: RequestFields): string | null {
  const u = f.raw('user');
  if (u === undefined) return null;
  if (typeof u !== 'string') throw new BadRequestError('user', 'user must be a string');
  return u;
}

export function parseCompletionRequest(body: unknown, context: number): ParsedRequest {
  const f = RequestFields.of(body);
  let text = f.raw('prompt');
  if (Array.isArray(text) && text.length === 1) text = text[0];
  if (typeof text !== 'string' || text === '') {
    throw new BadRequestError('prompt', 'prompt must be a non-empty string (one prompt per request)');
  }
  const maxTokens = f.integer('max_tokens', Math.min(16, context), 1, context);
  unsupportedOpenAiFields(f);
  const decoding = openAiDecoding(f, maxTokens);
  const stream = f.boolean('stream', false);
  const parsed = { prompt: { kind: 'raw', text } as const, decoding, stream, user: user(f) };
  const includeUsage = streamOptions(f, stream);
  f.done();
  return { ...parsed, includeUsage };
}

/**
 * One user message becomes the Alpaca instruction (`input`, an extension, its Input); a conversation
 * (several messages, or a system message) one turn of the template per exchange (chat-messages.ts,
 * src/data/conversation.ts).
 */
export function parseChatRequest(body: unknown, context: number): ParsedRequest {
  const f = RequestFields.of(body);
  const conversation = parseChatMessages(f.raw('messages'));
  const input = f.string('input', '');
  const single = conversation.system === null && conversation.messages.length === 1;
  if (input !== '' && !single) {
    throw new BadRequestError(
      'input',
      "input fills the template's Input of a single instruction: send one user message (and no system message) with it, or put the context in the messages",
    );
  }
  const prompt: PromptSpec = single
    ? { kind: 'instruction', instruction: conversation.messages[0] as string, input }
    : { kind: 'conversation', ...conversation };
  const newer =
    f.raw('max_completion_tokens') === undefined ? null : f.integer('max_completion_tokens', 1, 1, context);
  const maxTokens = newer ?? f.integer('max_tokens', Math.min(128, context), 1, context);
  unsupportedOpenAiFields(f);
  responseFormat(f);
  const decoding = openAiDecoding(f, maxTokens);
  const stream = f.boolean('stream', false);
  const includeUsage = streamOptions(f, stream);
  const parsed: ParsedRequest = {
    prompt,
    decoding,
    stream,
    user: user(f),
    includeUsage,
  };
  f.done();
  return parsed;
}

/** The web page's form, named as generate.py names its evaluate() arguments. */
export function parsePageRequest(body: unknown, context: number): ParsedRequest {
  const f = RequestFields.of(body);
  const instruction = f.string('instruction');
  if (instruction.trim() === '') throw new BadRequestError('instruction', 'the instruction is empty');
  const input = f.string('input', '');
  const temperature = f.number('temperature', PAGE_DEFAULTS.temperature, 0, 2);
  const topP = f.number('top_p', PAGE_DEFAULTS.top_p, 0, 1);
  const topK = f.integer('top_k', PAGE_DEFAULTS.top_k, 0, 1000);
  const numBeams = f.integer('num_beams', PAGE_DEFAULTS.num_beams, 1, MAX_BEAMS);
  const maxNewTokens = f.integer(
    'max_new_tokens',
    Math.min(PAGE_DEFAULTS.max_new_tokens, context),
    1,
    context,
  );
  const stream = f.boolean('stream', PAGE_DEFAULTS.stream);
  const sample = f.boolean('sample', false);
  const seed = f.raw('seed') === undefined ? null : f.integer('seed', 0, 0, 2 ** 31 - 1);
  f.done();
  if (sample && numBeams > 1) {
    throw new BadRequestError('num_beams', 'sampling draws one sequence: set Beams to 1 to sample');
  }
  if (sample && temperature === 0)
    throw new BadRequestError('temperature', 'sampling needs a temperature above 0');
  if (sample && topP === 0) throw new BadRequestError('top_p', 'sampling needs top_p above 0');
  return {
    prompt: { kind: 'instruction', instruction, input },
    decoding: {
      maxNewTokens,
      numBeams,
      doSample: sample,
      temperature: sample ? temperature : 1,
      topK,
      topP,
      seed,
      ...TRANSFORMERS_DEFAULTS,
    },
    stream,
    user: null,
    includeUsage: false,
  };
}

// The response objects of OpenAI's completions and chat completions APIs, whole and as stream
// chunks, built from one generation's result.
import type { FinishReason } from '../generate/decode.ts';
import type { GenerationResult } from '../generate/engine.ts';

export type ApiKind = 'completion' | 'chat';

export interface ResponseIds {
  readonly id: string;
  /** Unix seconds. */
  readonly created: number;
  readonly model: string;
}

/** OpenAI knows "stop" and "length"; a cancelled generation has nobody left to tell. */
const reason = (r: FinishReason) => (r === 'length' ? 'length' : 'stop');

export function usage(r: GenerationResult) {
  return {
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens,
  };
}

export function wholeResponse(kind: ApiKind, ids: ResponseIds, r: GenerationResult) {
  const base = { id: ids.id, created: ids.created, model: ids.model, usage: usage(r), seed: r.seed };
  if (kind === 'completion') {
    return {
      ...base,
      object: 'text_completion',
      choices: [{ index: 0, text: r.text, logprobs: null, finish_reason: reason(r.finishReason) }],
    };
  }
  return {
    ...base,
    object: 'chat.completion',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: r.text },
        logprobs: null,
        finish_reason: reason(r.finishReason),
      },
    ],
  };
}

/** One stream chunk: new text (a delta), or the end (finishReason set, text ''). */
export function chunk(
  kind: ApiKind,
  ids: ResponseIds,
  text: string,
  finish: FinishReason | null,
  first = false,
) {
  const base = { id: ids.id, created: ids.created, model: ids.model };
  const finish_reason = finish === null ? null : reason(finish);
  if (kind === 'completion') {
    return {
      ...base,
      object: 'text_completion',
      choices: [{ index: 0, text, logprobs: null, finish_reason }],
    };
  }
  const delta = first ? { role: 'assistant', content: text } : text === '' ? {} : { content: text };
  return {
    ...base,
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta, logprobs: null, finish_reason }],
  };
}

/** The usage-only chunk of stream_options.include_usage. */
export function usageChunk(kind: ApiKind, ids: ResponseIds, r: GenerationResult) {
  const object = kind === 'completion' ? 'text_completion' : 'chat.completion.chunk';
  return { id: ids.id, created: ids.created, model: ids.model, object, choices: [], usage: usage(r) };
}

// One generation request from the HTTP side: parse, wait for its turn in the fair queue, run it with
// the client's disconnect wired to cancellation, and answer in the route's format — OpenAI JSON or
// SSE deltas, or the page's events (the whole current answer each step, then a summary).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { NoTurnStructureError } from '../data/conversation.ts';
import type { Events } from '../events/events.ts';
import { type GenerationEngine, type GenerationResult, PromptTooLongError } from '../generate/engine.ts';
import { CancelledWhileWaitingError, type FairQueue, QueueFullError } from './fair-queue.ts';
import {
  endEventStream,
  HttpError,
  readJsonBody,
  sendError,
  sendEvent,
  sendJson,
  startEventStream,
} from './http-io.ts';
import { type ApiKind, chunk, type ResponseIds, usageChunk, wholeResponse } from './openai-shapes.ts';
import { BadRequestError } from './request-fields.ts';
import {
  type ParsedRequest,
  parseChatRequest,
  parseCompletionRequest,
  parsePageRequest,
} from './requests.ts';

export type RouteKind = ApiKind | 'page';

export interface RouteContext {
  readonly engine: GenerationEngine;
  readonly queue: FairQueue;
  readonly events: Events;
}

const PROMPT_FIELD: Readonly<Record<RouteKind, string>> = {
  completion: 'prompt',
  chat: 'messages',
  page: 'instruction',
};

/** A prompt that does not fit (the context, or the template's turns) is the request's fault: a 400
 * naming the prompt's field. */
function asRequestError(kind: RouteKind, err: unknown): unknown {
  return err instanceof PromptTooLongError || err instanceof NoTurnStructureError
    ? new BadRequestError(PROMPT_FIELD[kind], err.message)
    : err;
}

function parse(kind: RouteKind, body: unknown, context: number): ParsedRequest {
  if (kind === 'completion') return parseCompletionRequest(body, context);
  if (kind === 'chat') return parseChatRequest(body, context);
  return parsePageRequest(body, context);
}

/** What a streaming route sends as the generation goes and at its end: OpenAI deltas of the stable
 * text (beam search: everything at the end, since its leading beam can still change), or the page's
 * whole current answer at every step. */
class Streamer {
  private sent = '';
  private first = true;

  constructor(
    private readonly kind: RouteKind,
    private readonly res: ServerResponse,
    private readonly ids: ResponseIds,
    private readonly p: ParsedRequest,
  ) {}

  /** The hook for the engine, or undefined when nothing goes out before the end. */
  get onText(): ((stable: string, current: string) => void) | undefined {
    if (this.kind === 'page') return (_stable, current) => sendEvent(this.res, { text: current });
    if (this.p.decoding.numBeams > 1) return undefined;
    return (stable) => this.delta(stable);
  }

  private delta(text: string): void {
    if (this.kind === 'page' || text.length <= this.sent.length || !text.startsWith(this.sent)) return;
    sendEvent(this.res, chunk(this.kind, this.ids, text.slice(this.sent.length), null, this.first));
    this.sent = text;
    this.first = false;
  }

  finish(r: GenerationResult, ms: number): void {
    if (this.kind === 'page') {
      sendEvent(this.res, { done: true, ...pageSummary(r, ms) });
      endEventStream(this.res, false);
      return;
    }
    this.delta(r.text);
    sendEvent(this.res, chunk(this.kind, this.ids, '', r.finishReason, this.first));
    if (this.p.includeUsage) sendEvent(this.res, usageChunk(this.kind, this.ids, r));
    endEventStream(this.res);
  }
}

function pageSummary(r: GenerationResult, ms: number) {
  return {
    text: r.text,
    finish_reason: r.finishReason,
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    limited_by_context: r.limitedByContext,
    seed: r.seed,
    seconds: ms / 1000,
  };
}

export async function handleGeneration(
  kind: RouteKind,
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const id = `${kind === 'chat' ? 'chatcmpl' : kind === 'completion' ? 'cmpl' : 'gen'}-${randomUUID()}`;
  const ids: ResponseIds = { id, created: Math.floor(Date.now() / 1000), model: ctx.engine.name };
  let parsed: ParsedRequest;
  try {
    parsed = parse(kind, await readJsonBody(req), ctx.engine.contextLength);
    ctx.engine.promptIds(parsed.prompt); // a prompt too long is a 400, before any stream starts
  } catch (err) {
    return refuse(ctx, res, asRequestError(kind, err), id);
  }
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const client = parsed.user ?? req.socket.remoteAddress ?? 'unknown';
  if (parsed.stream) startEventStream(res);
  const stream = parsed.stream ? new Streamer(kind, res, ids, parsed) : null;
  const onText = stream?.onText;
  let started = 0;
  try {
    const result = await ctx.queue.run(client, abort.signal, () => {
      started = performance.now();
      ctx.events.info('generation_started', `${id}: ${kind} request of ${client}`, {
        request_id: id,
        kind,
        client,
        waiting: ctx.queue.waiting,
      });
      return ctx.engine.generate(parsed.prompt, parsed.decoding, {
        signal: abort.signal,
        ...(onText ? { onText } : {}),
      });
    });
    const ms = performance.now() - started;
    ctx.events.info(
      'generation_finished',
      `${id}: ${result.completionTokens} tokens (${result.finishReason}) in ${(ms / 1000).toFixed(2)} s`,
      {
        request_id: id,
        finish_reason: result.finishReason,
        prompt_tokens: result.promptTokens,
        completion_tokens: result.completionTokens,
        ms: Math.round(ms),
        tokens_per_s: result.completionTokens / Math.max(ms / 1000, 1e-9),
      },
    );
    if (result.finishReason === 'cancelled') return; // nobody to answer
    if (stream !== null) stream.finish(result, ms);
    else if (kind === 'page') sendJson(res, 200, pageSummary(result, ms));
    else sendJson(res, 200, wholeResponse(kind, ids, result));
  } catch (err) {
    if (err instanceof CancelledWhileWaitingError) return;
    refuse(ctx, res, asRequestError(kind, err), id);
  }
}

/** Answers an error: 400 naming the field, 413, 429 when the queue is full, else 500. */
function refuse(ctx: RouteContext, res: ServerResponse, err: unknown, id: string): void {
  let status = 500;
  let type = 'server_error';
  let param: string | null = null;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof BadRequestError) {
    status = 400;
    type = 'invalid_request_error';
    param = err.param;
  } else if (err instanceof HttpError) {
    status = err.status;
    type = err.type;
    param = err.param;
  } else if (err instanceof QueueFullError) {
    status = 429;
    type = 'rate_limit_error';
  }
  ctx.events[status === 500 ? 'error' : 'warn']('request_refused', `${id}: ${status} ${message}`, {
    request_id: id,
    status,
    param,
  });
  if (res.headersSent) {
    // A stream already started: say it in the stream, then end it.
    sendEvent(res, { error: { message, type, param, code: null } });
    endEventStream(res, false);
    return;
  }
  sendError(res, status, message, type, param);
}

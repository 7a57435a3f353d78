// Small HTTP helpers of the generate server: a size-limited JSON body, JSON answers, OpenAI's error
// shape ({"error": {"message", "type", "param", "code"}}), and Server-Sent Events.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequestError } from './request-fields.ts';

export const MAX_BODY_BYTES = 1 << 20;

export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

/** The body parsed as JSON; HttpError 413 when too large, BadRequestError when not JSON. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      throw new HttpError(
        413,
        'invalid_request_error',
        `the request body is larger than ${MAX_BODY_BYTES} bytes`,
      );
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadRequestError(null, `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function errorBody(message: string, type: string, param: string | null, code: string | null = null) {
  return { error: { message, type, param, code } };
}

export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  type: string,
  param: string | null,
  code: string | null = null,
) {
  sendJson(res, status, errorBody(message, type, param, code));
}

/** Starts an event stream (headers go out at once, so a queued client sees its request accepted). */
export function startEventStream(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
}

export function sendEvent(res: ServerResponse, data: unknown): void {
  res.write(`data: ${JSON.stringify(data)}\n\n`);
}

/** OpenAI's end-of-stream marker, then the end of the response. */
export function endEventStream(res: ServerResponse, done = true): void {
  if (done) res.write('data: [DONE]\n\n');
  res.end();
}

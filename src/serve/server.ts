// The HTTP server of `lora-mpt generate`: the web page at /, its /api/generate, OpenAI-compatible
// POST /v1/completions and /v1/chat/completions (JSON or SSE), GET /v1/models and GET /healthz; with
// an API key, everything but the page and /healthz needs `Authorization: Bearer <key>`.
// Generations run one at a time through a fair queue; a client that disconnects cancels its own.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Events } from '../events/events.ts';
import type { GenerationEngine } from '../generate/engine.ts';
import { ApiKey, sendUnauthorized } from './api-key.ts';
import { FairQueue } from './fair-queue.ts';
import { handleGeneration, type RouteContext, type RouteKind } from './generation-route.ts';
import { sendError, sendJson } from './http-io.ts';
import { pageHtml } from './page.ts';

export interface ServeOptions {
  readonly host: string;
  /** 0 = any free port (the address is in the result and the server_listening event). */
  readonly port: number;
  /** Requests that may wait while one runs; more are refused with 429. */
  readonly maxWaiting: number;
  /** The key every API request must send as `Authorization: Bearer`; null: none. */
  readonly apiKey: string | null;
  readonly events: Events;
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:7860/ */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const POSTS: Readonly<Record<string, RouteKind>> = {
  '/v1/completions': 'completion',
  '/v1/chat/completions': 'chat',
  '/api/generate': 'page',
};

/** GET /v1/models/{id}: one model (OpenAI's models.retrieve); the id is URL-encoded. */
const MODEL_PREFIX = '/v1/models/';

/** What a key guards: the model's API. The page (it holds no secret) and /healthz (probes) stay open. */
const needsKey = (path: string) =>
  POSTS[path] !== undefined || path === '/v1/models' || path.startsWith(MODEL_PREFIX);

function route(ctx: RouteContext, page: string, started: number, key: ApiKey | null) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (key !== null && needsKey(path) && !key.admits(req)) {
      ctx.events.warn('request_refused', `${req.method} ${path}: 401 missing or wrong API key`, {
        status: 401,
        path,
        client: req.socket.remoteAddress ?? 'unknown',
      });
      return sendUnauthorized(res);
    }
    const kind = POSTS[path];
    if (kind !== undefined) {
      if (req.method !== 'POST')
        return sendError(res, 405, `${path} takes POST`, 'invalid_request_error', null);
      handleGeneration(kind, ctx, req, res).catch((err: Error) => {
        ctx.events.error('request_refused', `${path}: ${err.message}`, { status: 500 });
        if (!res.headersSent) sendError(res, 500, err.message, 'server_error', null);
        else res.end();
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendError(res, 405, `${path} takes GET`, 'invalid_request_error', null);
    }
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(page),
      });
      return res.end(req.method === 'HEAD' ? undefined : page);
    }
    if (path === '/healthz') {
      // No model name: it is a local path, and /healthz answers without a key.
      return sendJson(res, 200, {
        status: 'ok',
        running: ctx.queue.running ? 1 : 0,
        waiting: ctx.queue.waiting,
      });
    }
    const model = { id: ctx.engine.name, object: 'model', created: started, owned_by: 'lora-mpt' };
    if (path === '/v1/models') return sendJson(res, 200, { object: 'list', data: [model] });
    if (path.startsWith(MODEL_PREFIX)) {
      let id: string;
      try {
        id = decodeURIComponent(path.slice(MODEL_PREFIX.length));
      } catch {
        return sendError(
          res,
          400,
          `${path}: the model id is not URL-encoded`,
          'invalid_request_error',
          'model',
        );
      }
      if (id === model.id) return sendJson(res, 200, model);
      return sendError(
        res,
        404,
        `The model ${JSON.stringify(id)} does not exist: this server holds ${JSON.stringify(model.id)} (GET /v1/models)`,
        'invalid_request_error',
        'model',
        'model_not_found',
      );
    }
    sendError(
      res,
      404,
      `no such path ${path}: try /, /healthz, /v1/models, POST /v1/completions, POST /v1/chat/completions`,
      'invalid_request_error',
      null,
    );
  };
}

export async function serve(engine: GenerationEngine, o: ServeOptions): Promise<RunningServer> {
  const ctx: RouteContext = { engine, queue: new FairQueue(o.maxWaiting), events: o.events };
  const page = pageHtml({
    modelName: engine.name,
    context: engine.contextLength,
    needsKey: o.apiKey !== null,
  });
  const key = o.apiKey === null ? null : new ApiKey(o.apiKey);
  const server: Server = createServer(route(ctx, page, Math.floor(Date.now() / 1000), key));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `--port ${o.port}: already in use on ${o.host}; pick another (or 0 for any free port)`
            : `cannot listen on ${o.host}:${o.port}: ${err.message}`,
        ),
      ),
    );
    server.listen(o.port, o.host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const url = `http://${host}:${port}/`;
  o.events.info('server_listening', `serving ${engine.name} on ${url}`, {
    url,
    host: o.host,
    port,
    api_key: o.apiKey !== null,
  });
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

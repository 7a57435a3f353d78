// The small HTTP server every process runs for Prometheus and Kubernetes probes: GET /metrics in
// the Prometheus text format, GET /healthz answering 200 while `healthy()` holds, 503 otherwise,
// and any pages the process adds (the coordinator's status page and its JSON).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  readonly registry: Registry;
  readonly port: number;
  readonly host?: string;
  /** Liveness: return a reason string when unhealthy, undefined when healthy. */
  readonly unhealthyReason?: () => string | undefined;
  /** More GET paths (e.g. `/`, `/api/status`): each answers 200 with what its function returns. */
  readonly pages?: Readonly<Record<string, () => Page>>;
}

export interface Page {
  readonly contentType: string;
  readonly body: string;
}

export async function serveMetrics(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
    } else if (path === '/metrics') {
      opts.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(text),
        (err: Error) =>
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      );
    } else if (path === '/healthz') {
      const reason = opts.unhealthyReason?.();
      res
        .writeHead(reason ? 503 : 200, { 'content-type': 'text/plain' })
        .end(reason ? `${reason}\n` : 'ok\n');
    } else if (opts.pages?.[path]) {
      const render = opts.pages[path];
      try {
        const page = render();
        res.writeHead(200, { 'content-type': page.contentType, 'cache-control': 'no-store' }).end(page.body);
      } catch (err) {
        res
          .writeHead(500, { 'content-type': 'text/plain' })
          .end(`${path} failed: ${(err as Error).message}\n`);
      }
    } else {
      const paths = ['/metrics', '/healthz', ...Object.keys(opts.pages ?? {})];
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end(`${path}: not here; try ${paths.join(', ')}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    // server.close() waits for every open connection, and a browser polling the status page every
    // second keeps its keep-alive connection busy for ever (seen: a coordinator that had finished its
    // run never exited). A metrics endpoint has nothing to finish: end them all.
    close: () =>
      new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

// The small HTTP server every process runs for Prometheus and Kubernetes probes: GET /metrics in
// the Prometheus text format, GET /healthz answering 200 while `healthy()` holds, 503 otherwise.
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
}

export async function serveMetrics(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
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
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('try /metrics or /healthz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}

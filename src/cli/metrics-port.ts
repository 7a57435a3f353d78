// Where a process serves /metrics and /healthz. Several workers on one host must not collide: a
// port the user did not pick is the default or the next free one of a small range; a port the user
// did pick is used or refused with an error naming the flag.
import type { Registry } from 'prom-client';
import { type MetricsServer, type MetricsServerOptions, serveMetrics } from '../metrics/http-server.ts';
import { UsageError } from './flags.ts';

/** How many ports after the default a process on a crowded host tries (one per GPU is plenty). */
export const DEFAULT_PORT_SPAN = 64;

export async function serveMetricsOn(
  registry: Registry,
  o: {
    readonly port: number | undefined;
    readonly defaultPort: number;
    readonly flag: string;
    readonly host: string;
    readonly pages?: MetricsServerOptions['pages'];
  },
): Promise<MetricsServer> {
  const inUse = (err: unknown) => (err as { code?: unknown }).code === 'EADDRINUSE';
  if (o.port !== undefined) {
    try {
      return await serveMetrics({
        registry,
        port: o.port,
        host: o.host,
        ...(o.pages ? { pages: o.pages } : {}),
      });
    } catch (err) {
      if (!inUse(err)) throw err;
      throw new UsageError(
        `${o.flag} ${o.port}: ${o.host}:${o.port} is already in use (another lora-mpt process?); pick another port, or 0 for any free one`,
      );
    }
  }
  for (let port = o.defaultPort; port < o.defaultPort + DEFAULT_PORT_SPAN; port++) {
    try {
      return await serveMetrics({ registry, port, host: o.host, ...(o.pages ? { pages: o.pages } : {}) });
    } catch (err) {
      if (!inUse(err)) throw err;
    }
  }
  throw new UsageError(
    `${o.flag}: ports ${o.defaultPort}-${o.defaultPort + DEFAULT_PORT_SPAN - 1} are all in use on ${o.host}; pass ${o.flag} PORT (0: any free port)`,
  );
}

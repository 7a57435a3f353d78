// Gives a test a real NATS server: a container through testcontainers where a container runtime
// answers, otherwise a `nats-server` child process on a random loopback port. Always cleaned up.
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { type NatsUser, natsConfig, startLocalNats } from '../../src/cli/local-nats.ts';

export interface NatsServer {
  /** `nats://host:port`, ready for connections. */
  readonly url: string;
  readonly port: number;
  /** How the server was started, for test output. */
  readonly kind: 'container' | 'process';
  /** `http://host:port` of the monitoring endpoint (/varz, /connz), when `httpPort` was given. */
  readonly monitorUrl?: string;
  /** Kill and restart on the same port (for fault tests). Process servers only. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface NatsOptions {
  /** Server max_payload in bytes (default: the server's 1 MiB). */
  readonly maxPayload?: number;
  /** Force one way of starting the server. */
  readonly prefer?: 'container' | 'process';
  /** Serve the monitoring endpoint on this loopback port; 0 picks a free one. Default: off. */
  readonly httpPort?: number;
  /** Users and the subjects each may use (then nobody else may connect). */
  readonly users?: readonly NatsUser[];
  /** TLS with this server certificate (e.g. coordinator.crt of `lora-mpt certs`, valid for 127.0.0.1). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
}

function containerRuntimeLikely(): boolean {
  if (process.env.DOCKER_HOST) return true;
  return ['/var/run/docker.sock', `/run/user/${process.getuid?.() ?? 0}/podman/podman.sock`].some(existsSync);
}

async function startContainer(opts: NatsOptions): Promise<NatsServer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer('nats:2.10-alpine')
    .withCopyContentToContainer([
      {
        content: natsConfig({
          listen: '0.0.0.0:4222',
          maxPayload: opts.maxPayload,
          http: opts.httpPort === undefined ? undefined : '0.0.0.0:8222',
        }),
        target: '/etc/nats/test.conf',
      },
    ])
    .withCommand(['-c', '/etc/nats/test.conf'])
    .withExposedPorts(...(opts.httpPort === undefined ? [4222] : [4222, 8222]))
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .start();
  const port = container.getMappedPort(4222);
  const monitorUrl =
    opts.httpPort === undefined
      ? undefined
      : `http://${container.getHost()}:${container.getMappedPort(8222)}`;
  return {
    url: `nats://${container.getHost()}:${port}`,
    port,
    kind: 'container',
    ...(monitorUrl ? { monitorUrl } : {}),
    restart: async () => {
      await container.restart();
    },
    stop: async () => {
      await container.stop();
    },
  };
}

// nats-server has no "random port" for monitoring: ask the kernel for a free one.
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function startProcess(opts: NatsOptions): Promise<NatsServer> {
  const httpPort = opts.httpPort === 0 ? await freePort() : opts.httpPort;
  const start = (port: number) =>
    startLocalNats({
      port,
      ...(opts.maxPayload ? { maxPayload: opts.maxPayload } : {}),
      ...(httpPort === undefined ? {} : { httpPort }),
      ...(opts.users ? { users: opts.users } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
  // -1 asks nats-server for a random free port; restarts reuse the bound one.
  let server = await start(-1);
  const port = server.port;
  return {
    url: server.url,
    port,
    kind: 'process',
    ...(httpPort === undefined ? {} : { monitorUrl: `http://127.0.0.1:${httpPort}` }),
    restart: async () => {
      await server.stop();
      server = await start(port);
    },
    stop: () => server.stop(),
  };
}

export async function startNats(opts: NatsOptions = {}): Promise<NatsServer> {
  // Users and TLS name files on this machine: a local process.
  const local = opts.users !== undefined || opts.tls !== undefined;
  const prefer = opts.prefer ?? (local || !containerRuntimeLikely() ? 'process' : 'container');
  return prefer === 'container' ? startContainer(opts) : startProcess(opts);
}

// Gives a test a real NATS server: where a container engine answers (container-engine.ts), a
// container of the lora-mpt image running its nats-server (Debian's, as in the chart's image) on the
// host network; otherwise a `nats-server` child process. Either way on a free loopback port, and
// always cleaned up.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wait } from 'testcontainers';
import { type NatsUser, natsConfig, startLocalNats } from '../../src/cli/local-nats.ts';
import { containerEngine } from './container-engine.ts';
import { hardenedContainer, requireImage } from './containers.ts';

export interface NatsServer {
  /** `nats://host:port`, ready for connections. */
  readonly url: string;
  readonly port: number;
  /** How the server was started, for test output. */
  readonly kind: 'container' | 'process';
  /** `http://host:port` of the monitoring endpoint (/varz, /connz), when `httpPort` was given. */
  readonly monitorUrl?: string;
  /** Kill and restart on the same port (for fault tests). */
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

/** Configuration folders of containers not yet stopped: removed when this process exits anyway. */
const confDirs = new Set<string>();
process.on('exit', () => {
  for (const dir of confDirs) rmSync(dir, { recursive: true, force: true });
});

async function startContainer(opts: NatsOptions): Promise<NatsServer> {
  await requireImage();
  const port = await freePort();
  const httpPort = opts.httpPort === 0 ? await freePort() : opts.httpPort;
  // The root filesystem is read-only: the configuration comes in as a read-only bind mount.
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-nats-'));
  const conf = join(dir, 'nats.conf');
  writeFileSync(
    conf,
    natsConfig({
      listen: `127.0.0.1:${port}`,
      maxPayload: opts.maxPayload,
      http: httpPort === undefined ? undefined : `127.0.0.1:${httpPort}`,
    }),
  );
  chmodSync(dir, 0o755);
  confDirs.add(dir);
  const launch = () =>
    hardenedContainer()
      .withBindMounts([{ source: conf, target: '/etc/nats/test.conf', mode: 'ro' }])
      .withEntrypoint(['nats-server'])
      .withCommand(['-c', '/etc/nats/test.conf'])
      .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
      .start();
  let container = await launch().catch((err: Error) => {
    rmSync(dir, { recursive: true, force: true });
    confDirs.delete(dir);
    throw err;
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    kind: 'container',
    ...(httpPort === undefined ? {} : { monitorUrl: `http://127.0.0.1:${httpPort}` }),
    // A new container on the same port: testcontainers' restart() waits for the log line among
    // logs podman 4.3 does not always return after a restart.
    restart: async () => {
      await container.stop({ timeout: 0, remove: true, removeVolumes: true });
      container = await launch();
    },
    stop: async () => {
      await container.stop({ remove: true, removeVolumes: true });
      rmSync(dir, { recursive: true, force: true });
      confDirs.delete(dir);
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
  // Users and TLS name files on this machine: a local process (its config points at them).
  const local = opts.users !== undefined || opts.tls !== undefined;
  const prefer = opts.prefer ?? (local || 'absent' in (await containerEngine()) ? 'process' : 'container');
  return prefer === 'container' ? startContainer(opts) : startProcess(opts);
}

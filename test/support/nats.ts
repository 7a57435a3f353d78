// Gives a test a real NATS server: a container through testcontainers where a container runtime
// answers, otherwise a `nats-server` child process on a random loopback port. Always cleaned up.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
        content: serverConfig('0.0.0.0:4222', opts, opts.httpPort === undefined ? undefined : '0.0.0.0:8222'),
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

function waitForListening(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const m = /Listening for client connections on [^\s]+:(\d+)/.exec(log);
      if (m && /Server is ready/.test(log)) {
        child.stderr?.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`nats-server exited with ${code} before it was ready:\n${log}`)),
    );
    child.once('error', (err) =>
      reject(
        new Error(
          `could not run nats-server (${err.message}); install it with \`apt-get install nats-server\``,
        ),
      ),
    );
  });
}

// max_payload has no command-line flag; every option goes through a config file.
function serverConfig(listen: string, opts: NatsOptions, http?: string): string {
  const lines = [`listen: ${listen}`];
  if (opts.maxPayload) lines.push(`max_payload: ${opts.maxPayload}`);
  if (http) lines.push(`http: ${http}`);
  return `${lines.join('\n')}\n`;
}

async function spawnServer(
  port: number,
  opts: NatsOptions,
  httpPort?: number,
): Promise<{ child: ChildProcess; port: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-nats-'));
  const conf = join(dir, 'nats.conf');
  const http = httpPort === undefined ? undefined : `127.0.0.1:${httpPort}`;
  writeFileSync(conf, serverConfig(`127.0.0.1:${port}`, opts, http));
  const child = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const bound = await waitForListening(child);
    child.stderr?.resume();
    return { child, port: bound };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
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
  // -1 asks nats-server for a random free port; restarts reuse the bound one.
  let { child, port } = await spawnServer(-1, opts, httpPort);
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    kind: 'process',
    ...(httpPort === undefined ? {} : { monitorUrl: `http://127.0.0.1:${httpPort}` }),
    restart: async () => {
      await kill(child);
      ({ child } = await spawnServer(port, opts, httpPort));
    },
    stop: () => kill(child),
  };
}

export async function startNats(opts: NatsOptions = {}): Promise<NatsServer> {
  const prefer = opts.prefer ?? (containerRuntimeLikely() ? 'container' : 'process');
  return prefer === 'container' ? startContainer(opts) : startProcess(opts);
}

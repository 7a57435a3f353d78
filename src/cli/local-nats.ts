// Starts a local `nats-server` child process (the Debian package) on loopback: what `lora-mpt demo`
// uses as its message bus, and what tests use where no container engine answers. Options go
// through a config file because max_payload has no command-line flag.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LocalNatsOptions {
  /** Client port; -1 lets the server pick a free one. */
  readonly port: number;
  readonly maxPayload?: number;
  /** Monitoring endpoint port (/varz), when wanted. */
  readonly httpPort?: number;
  readonly users?: readonly NatsUser[];
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
}

export interface LocalNats {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

/** A NATS user and the subjects it may publish and subscribe to (nothing else). */
export interface NatsUser {
  readonly user: string;
  readonly password: string;
  /** Subject patterns, e.g. `lora.<run id>.>`: the run's subjects only. */
  readonly subjects: readonly string[];
}

/**
 * A nats-server config file: client `listen` address, optional max_payload and monitoring `http`,
 * users allowed only their subjects (docs/security.md: a NATS client that is not a member of the
 * run can neither read nor publish its gradients), and TLS with a server certificate.
 */
export function natsConfig(o: {
  listen: string;
  maxPayload?: number | undefined;
  http?: string | undefined;
  users?: readonly NatsUser[] | undefined;
  tls?: { readonly certFile: string; readonly keyFile: string } | undefined;
}): string {
  const q = JSON.stringify;
  const lines = [`listen: ${o.listen}`];
  if (o.maxPayload) lines.push(`max_payload: ${o.maxPayload}`);
  if (o.http !== undefined) lines.push(`http: ${o.http}`);
  if (o.tls) lines.push(`tls {`, `  cert_file: ${q(o.tls.certFile)}`, `  key_file: ${q(o.tls.keyFile)}`, `}`);
  if (o.users) {
    lines.push('authorization {', '  users = [');
    for (const u of o.users) {
      const subjects = `[${u.subjects.map((x) => q(x)).join(', ')}]`;
      lines.push(
        `    { user: ${q(u.user)}, password: ${q(u.password)}, permissions: { publish: ${subjects}, subscribe: ${subjects} } }`,
      );
    }
    lines.push('  ]', '}');
  }
  return `${lines.join('\n')}\n`;
}

function waitForListening(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const m = /Listening for client connections on [^\s]+:(\d+)/.exec(log);
      if (m && /Server is ready/.test(log)) {
        child.stderr?.off('data', onData);
        child.stderr?.resume();
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

export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

export async function startLocalNats(o: LocalNatsOptions): Promise<LocalNats> {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-nats-'));
  const conf = join(dir, 'nats.conf');
  writeFileSync(
    conf,
    natsConfig({
      listen: `127.0.0.1:${o.port}`,
      maxPayload: o.maxPayload,
      http: o.httpPort === undefined ? undefined : `127.0.0.1:${o.httpPort}`,
      users: o.users,
      tls: o.tls,
    }),
  );
  const child = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const port = await waitForListening(child);
    return { child, port, url: `nats://127.0.0.1:${port}`, stop: () => stopProcess(child) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

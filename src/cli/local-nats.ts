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
}

export interface LocalNats {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

/** A nats-server config file: client `listen` address, optional max_payload and monitoring `http`. */
export function natsConfig(o: {
  listen: string;
  maxPayload?: number | undefined;
  http?: string | undefined;
}): string {
  const lines = [`listen: ${o.listen}`];
  if (o.maxPayload) lines.push(`max_payload: ${o.maxPayload}`);
  if (o.http !== undefined) lines.push(`http: ${o.http}`);
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

// A NATS cluster server and leaf servers joined to it, as nats-server processes on loopback (the
// Helm chart's shape on one machine: nats.leaf runs one leaf server per node). Free ports; stop()
// kills them and removes their config files.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LeafServers {
  /** Client URL of the cluster server. */
  readonly hubUrl: string;
  /** Client URL of each leaf server. */
  readonly leafUrls: readonly string[];
  stop(): Promise<void>;
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

export async function startLeafServers(leaves: number, maxPayload?: number): Promise<LeafServers> {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-leaf-'));
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((r) => {
            if (c.exitCode !== null || c.signalCode !== null) return r();
            c.once('exit', () => r());
            c.kill('SIGKILL');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  const server = (name: string, lines: readonly string[], ready: RegExp) => {
    const conf = join(dir, `${name}.conf`);
    const all = maxPayload === undefined ? lines : [...lines, `max_payload: ${maxPayload}`];
    writeFileSync(conf, `${all.join('\n')}\n`);
    const child = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    return new Promise<void>((resolve, reject) => {
      let log = '';
      child.stderr?.on('data', (c: Buffer) => {
        log = (log + c.toString()).slice(-4000);
        if (ready.test(log)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`nats-server ${name} exited with ${code}:\n${log}`)));
    });
  };
  try {
    const [hubPort, leafPort] = [await freePort(), await freePort()];
    await server(
      'hub',
      [`listen: 127.0.0.1:${hubPort}`, `leafnodes { listen: 127.0.0.1:${leafPort} }`],
      /Server is ready/,
    );
    const leafUrls: string[] = [];
    for (let i = 0; i < leaves; i++) {
      const port = await freePort();
      await server(
        `leaf${i}`,
        [
          `listen: 127.0.0.1:${port}`,
          `leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:${leafPort}" } ] }`,
        ],
        /Leafnode connection created/,
      );
      leafUrls.push(`nats://127.0.0.1:${port}`);
    }
    return { hubUrl: `nats://127.0.0.1:${hubPort}`, leafUrls, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

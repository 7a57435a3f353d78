// A benchmark's child process that answers one JSON line per request line (its first line says it
// is ready), so a benchmark can interleave several peers and each sees the same machine load.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export type Reply = Record<string, unknown>;

/** A child process answering one JSON line per request line; its first line says it is ready. */
export class Peer {
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;
  ready: Reply = {};

  private constructor(
    readonly name: string,
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly stderr: () => string,
  ) {
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (!l.startsWith('{')) return;
      this.lines.push(l);
      this.wake?.();
    });
    child.once('exit', () => this.wake?.());
  }

  /** Starts `cmd args`; resolves with the peer once it is ready, or with why it did not start. */
  static async start(name: string, cmd: string, args: readonly string[]): Promise<Peer | string> {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err = (err + c.toString()).slice(-2000);
    });
    const peer = new Peer(name, child, () => err);
    try {
      peer.ready = await peer.next();
      return peer;
    } catch {
      return `${name} did not start: ${peer.stderr().trim().split('\n').slice(-2).join(' ')}`;
    }
  }

  private next(): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const poll = () => {
        const line = this.lines.shift();
        if (line !== undefined) resolve(JSON.parse(line) as Reply);
        else if (this.child.exitCode !== null || this.child.signalCode !== null)
          reject(new Error(`${this.name} exited: ${this.stderr()}`));
        else this.wake = poll;
      };
      poll();
    });
  }

  request(what: string): Promise<Reply> {
    this.child.stdin.write(`${what}\n`);
    return this.next();
  }

  stop(): void {
    this.child.stdin.end();
  }

  /** Ends the child at once (a failed run must not leave it waiting on a round). */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  /** Resolves when the child has exited. */
  exited(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((r) => this.child.once('exit', () => r()));
  }
}

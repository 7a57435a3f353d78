// Starts real `lora-mpt` processes for integration tests (coordinator, workers, finetune), collects
// their output, reads their structured events (JSON lines: the processes' stdout is a pipe, so they
// emit JSON), waits for an event, and kills them (SIGKILL for fault tests). Every process a test
// starts is killed when the test file ends, whatever happened.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { EventName } from '../../src/events/events.ts';

const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));

/** One event as a process emitted it (see src/events/names.ts). */
export interface LoraEvent {
  readonly event: EventName;
  readonly level: string;
  readonly msg: string;
  readonly step?: number;
  readonly generation?: number;
  readonly worker?: string;
  readonly run_id?: string;
  readonly [key: string]: unknown;
}

export interface LoraProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything printed so far, stdout and stderr interleaved. */
  output(): string;
  /** The events emitted so far, in order. */
  events(): LoraEvent[];
  /**
   * Resolves with the first event named `name` (from index `from` of events() on) for which `where`
   * holds, waiting for it; rejects when the process exits first or after `ms`.
   */
  waitForEvent(
    name: EventName,
    where?: (e: LoraEvent) => boolean,
    o?: { readonly ms?: number; readonly from?: number },
  ): Promise<LoraEvent>;
  /** Resolves with the exit code (null when killed by a signal). */
  exited(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export function startLoraMpt(
  name: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): LoraProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let text = '';
  let partial = '';
  const events: LoraEvent[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    const s = chunk.toString();
    text += s;
    partial += s;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const e = JSON.parse(line) as LoraEvent;
        if (typeof e.event === 'string') events.push(e);
      } catch {
        // not an event line
      }
    }
    wake();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    wake();
  });
  // 'close', not 'exit': by then stdout and stderr are drained, so events() holds every event.
  const exit = new Promise<number | null>((resolve) => {
    child.once('close', (code) => {
      live.delete(child);
      wake();
      resolve(code);
    });
  });
  return {
    name,
    child,
    output: () => text,
    events: () => events,
    waitForEvent(eventName, where = () => true, o = {}) {
      const ms = o.ms ?? 60_000;
      const from = o.from ?? 0;
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = events.slice(from).find((e) => e.event === eventName && where(e));
          if (hit) {
            done();
            resolve(hit);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(
              new Error(
                `${name} exited (${child.exitCode ?? child.signalCode}) before the event ${eventName}:\n${text}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name} did not emit the event ${eventName} within ${ms} ms:\n${text}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    exited: () => exit,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exit;
    },
  };
}

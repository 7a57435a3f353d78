// What a test sees of a running `lora-mpt` command, a child process or a container alike: its output
// as text, the structured events in it (JSON lines: the command's stdout is not a terminal, so it
// emits JSON) and a way to wait for one event. `LoraCommand` is the handle both kinds return.
import type { EventName } from '../../src/events/events.ts';

/** One event as a command emitted it (see src/events/names.ts). */
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

/** A running `lora-mpt` command (process or container). */
export interface LoraCommand {
  readonly name: string;
  /** Everything printed so far, stdout and stderr interleaved. */
  output(): string;
  /** The events emitted so far, in order. */
  events(): LoraEvent[];
  /**
   * Resolves with the first event named `name` (from index `from` of events() on) for which `where`
   * holds, waiting for it; rejects when the command exits first or after `ms`.
   */
  waitForEvent(
    name: EventName,
    where?: (e: LoraEvent) => boolean,
    o?: { readonly ms?: number; readonly from?: number },
  ): Promise<LoraEvent>;
  /** Resolves with the exit code (a process killed by a signal: null; a container: 128 + signal). */
  exited(): Promise<number | null>;
  /** Sends `signal` without waiting (SIGTERM to test a graceful stop). */
  signal(signal: NodeJS.Signals): void;
  /** Sends `signal` (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Collects a command's output; the owner feeds it and says when the command has ended. */
export interface OutputCollector extends Pick<LoraCommand, 'name' | 'output' | 'events' | 'waitForEvent'> {
  /** A chunk of stdout (events are read from it) or stderr (text only). */
  add(chunk: Buffer | string, stream: 'stdout' | 'stderr'): void;
  /** The command has exited with this code or signal; pending waits reject. */
  end(how: string): void;
}

export function collectOutput(name: string): OutputCollector {
  let text = '';
  let partial = '';
  let ended: string | null = null;
  const events: LoraEvent[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
  };
  return {
    name,
    output: () => text,
    events: () => events,
    add(chunk, stream) {
      const s = chunk.toString();
      text += s;
      if (stream === 'stdout') {
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
      }
      wake();
    },
    end(how) {
      ended = how;
      wake();
    },
    waitForEvent(eventName, where = () => true, o = {}) {
      const ms = o.ms ?? 60_000;
      const from = o.from ?? 0;
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = events.slice(from).find((e) => e.event === eventName && where(e));
          if (hit) {
            done();
            resolve(hit);
          } else if (ended !== null) {
            done();
            reject(new Error(`${name} exited (${ended}) before the event ${eventName}:\n${text}`));
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
  };
}

// What happened in a run, as structured events: one JSON line per event for machines (pino: event
// name, run id, worker, step, generation, and a readable `msg`), or the readable line alone for
// people. Tests, the demo and log pipelines read the JSON form; nobody parses the sentences.
import type { Writable } from 'node:stream';
import pino from 'pino';
import type { EventName } from './names.ts';
import { TextSink } from './text-sink.ts';

export type { EventName } from './names.ts';

/** Fields every event may carry; the names are the JSON keys. */
export interface EventFields {
  readonly step?: number;
  readonly generation?: number;
  readonly worker?: string;
  readonly [key: string]: unknown;
}

export type EventLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Events {
  /** Something that happened: `name` for machines, `text` for people. */
  info(name: EventName, text: string, fields?: EventFields): void;
  warn(name: EventName, text: string, fields?: EventFields): void;
  error(name: EventName, text: string, fields?: EventFields): void;
  /** Detail nobody needs to see unless asked (`--log_level debug`). */
  debug(name: EventName, text: string, fields?: EventFields): void;
  /** The same sink with more fields on every event (e.g. `run_id` once it is known). */
  child(bindings: EventFields): Events;
}

export type LogFormat = 'json' | 'text';

export interface EventsOptions {
  /** Shown before each text line, e.g. `coordinator` or the worker id; empty for finetune. */
  readonly label: string;
  readonly format: LogFormat;
  readonly level?: EventLevel;
  /** Fields on every event (e.g. `{ worker: 'w0' }`). */
  readonly bindings?: EventFields;
  /** Where lines go (default stdout). */
  readonly out?: NodeJS.WriteStream | Writable;
  /** In text form, print `step_committed` every this many steps (a TTY gets one live line). */
  readonly stepEvery?: number;
}

export function createEvents(o: EventsOptions): Events {
  const out = o.out ?? process.stdout;
  const stream =
    o.format === 'json' ? out : new TextSink(out, { label: o.label, stepEvery: o.stepEvery ?? 1 });
  const logger = pino(
    {
      level: o.level ?? 'info',
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  return wrap(o.bindings ? logger.child(o.bindings) : logger);
}

function wrap(logger: pino.Logger): Events {
  return {
    info: (name, text, fields) => logger.info({ event: name, ...fields }, text),
    warn: (name, text, fields) => logger.warn({ event: name, ...fields }, text),
    error: (name, text, fields) => logger.error({ event: name, ...fields }, text),
    debug: (name, text, fields) => logger.debug({ event: name, ...fields }, text),
    child: (bindings) => wrap(logger.child(bindings)),
  };
}

/** Events that go nowhere (unit tests of parts that take an `Events`). */
export const silentEvents: Events = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  child: () => silentEvents,
};

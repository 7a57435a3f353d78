// What happened in a run, as structured events: one JSON line per event for machines (pino: event
// name, run id, worker, step, generation, and a readable `msg`), or the readable line alone for
// people. Tests, the demo and log pipelines read the JSON form; nobody parses the sentences.
import type { Writable } from 'node:stream';
import pino from 'pino';
import type { EventName, TypedEventFields } from './names.ts';
import { TextSink } from './text-sink.ts';

export type { EventName, TypedEventFields } from './names.ts';

/** Fields every event may carry; the names are the JSON keys. */
export interface EventFields {
  readonly step?: number;
  readonly generation?: number;
  readonly worker?: string;
  readonly [key: string]: unknown;
}

/** The fields of a `name` event: its typed fields (required) when names.ts lists them. */
export type FieldsOf<N extends EventName> = N extends keyof TypedEventFields
  ? TypedEventFields[N] & EventFields
  : EventFields;

/** What follows the text of a `name` event: its typed fields, or any fields (optional). */
export type FieldsArg<N extends EventName> = N extends keyof TypedEventFields
  ? [fields: FieldsOf<N>]
  : [fields?: EventFields];

export type EventLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Events {
  /** Something that happened: `name` for machines, `text` for people. */
  info<N extends EventName>(name: N, text: string, ...fields: FieldsArg<N>): void;
  warn<N extends EventName>(name: N, text: string, ...fields: FieldsArg<N>): void;
  error<N extends EventName>(name: N, text: string, ...fields: FieldsArg<N>): void;
  /** Detail nobody needs to see unless asked (`--log_level debug`). */
  debug<N extends EventName>(name: N, text: string, ...fields: FieldsArg<N>): void;
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
  const at =
    (level: EventLevel) =>
    (name: EventName, text: string, fields?: EventFields): void => {
      // Below the level: nothing to build (debug events come at every micro-batch).
      if (logger.isLevelEnabled(level)) logger[level]({ event: name, ...fields }, text);
    };
  return {
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    debug: at('debug'),
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

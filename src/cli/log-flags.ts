// The flags every long-running command takes for its output: structured JSON events for machines
// (tests, log pipelines, `kubectl logs | jq`), readable lines for people, chosen by a terminal.
import { createEvents, type EventFields, type EventLevel, type Events } from '../events/events.ts';
import { type FlagSpecs, UsageError } from './flags.ts';

export const logFlags = {
  log_format: {
    kind: 'string',
    default: 'auto',
    help: 'Output: json (one event per line: event, run_id, worker, step, generation, msg), text (readable lines; on a terminal a live progress line), or auto (text on a terminal, json otherwise).',
  },
  log_level: {
    kind: 'string',
    default: 'info',
    help: "Least important events shown: debug (adds every step's ledger audit), info, warn or error.",
  },
} as const satisfies FlagSpecs;

/**
 * The same two flags on a one-shot command (merge, certs, preprocess, eval, demo, gpu-check): its
 * messages are read by a person, so text is the default; json makes them events for a log pipeline.
 * Its results (records, a loss, a JSON object with --json) are printed as they are either way.
 */
export const reportLogFlags = {
  log_format: {
    kind: 'string',
    default: 'text',
    help: "Its messages: text (readable lines, the default), json (one event per line: event, level, msg and fields, for log pipelines) or auto (text on a terminal, json otherwise). The command's results are printed as they are.",
  },
  log_level: {
    kind: 'string',
    default: 'info',
    help: 'Least important messages shown: debug, info, warn (only warnings and errors) or error.',
  },
} as const satisfies FlagSpecs;

/** Refuses a --log_format / --log_level value the flags do not take, naming it. */
export function checkLogFlags(f: { readonly log_format: string; readonly log_level: string }): void {
  if (!['auto', 'json', 'text'].includes(f.log_format)) {
    throw new UsageError(`--log_format ${f.log_format}: expected auto, json or text`);
  }
  if (!['debug', 'info', 'warn', 'error'].includes(f.log_level)) {
    throw new UsageError(`--log_level ${f.log_level}: expected debug, info, warn or error`);
  }
}

export function eventsFromFlags(
  f: { readonly log_format: string; readonly log_level: string },
  o: {
    readonly label: string;
    readonly bindings?: EventFields;
    readonly stepEvery?: number;
    /** Where the events go (default stdout; stderr where stdout carries a result). */
    readonly out?: NodeJS.WriteStream;
  },
): Events {
  checkLogFlags(f);
  const out = o.out ?? process.stdout;
  const format = f.log_format === 'auto' ? (out.isTTY ? 'text' : 'json') : f.log_format;
  return createEvents({
    label: o.label,
    format: format as 'json' | 'text',
    level: f.log_level as EventLevel,
    ...(o.bindings ? { bindings: o.bindings } : {}),
    ...(o.stepEvery ? { stepEvery: o.stepEvery } : {}),
    ...(o.out ? { out: o.out } : {}),
  });
}

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

export function eventsFromFlags(
  f: { readonly log_format: string; readonly log_level: string },
  o: { readonly label: string; readonly bindings?: EventFields; readonly stepEvery?: number },
): Events {
  if (!['auto', 'json', 'text'].includes(f.log_format)) {
    throw new UsageError(`--log_format ${f.log_format}: expected auto, json or text`);
  }
  if (!['debug', 'info', 'warn', 'error'].includes(f.log_level)) {
    throw new UsageError(`--log_level ${f.log_level}: expected debug, info, warn or error`);
  }
  const format = f.log_format === 'auto' ? (process.stdout.isTTY ? 'text' : 'json') : f.log_format;
  return createEvents({
    label: o.label,
    format: format as 'json' | 'text',
    level: f.log_level as EventLevel,
    ...(o.bindings ? { bindings: o.bindings } : {}),
    ...(o.stepEvery ? { stepEvery: o.stepEvery } : {}),
  });
}

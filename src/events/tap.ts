// Hands every event a process emits to a listener as well as to its sink: the coordinator's status
// page shows the same events its log does, from the same calls. Fields bound with child() come
// along, and events below the log level are tapped too (the listener picks what it wants).
import type { EventFields, EventLevel, EventName, Events } from './events.ts';

export interface TappedEvent {
  readonly time: number;
  readonly level: EventLevel;
  readonly event: EventName;
  readonly msg: string;
  readonly fields: EventFields;
}

export function tapEvents(
  inner: Events,
  listener: (e: TappedEvent) => void,
  bound: EventFields = {},
): Events {
  const at =
    (level: EventLevel) =>
    (event: EventName, msg: string, fields?: EventFields): void => {
      inner[level](event, msg, fields);
      listener({ time: Date.now(), level, event, msg, fields: { ...bound, ...fields } });
    };
  return {
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    debug: at('debug'),
    child: (bindings) => tapEvents(inner.child(bindings), listener, { ...bound, ...bindings }),
  };
}

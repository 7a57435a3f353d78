// Hands every event a process emits to a listener as well as to its sink: the coordinator's status
// page shows the same events its log does, from the same calls. Fields bound with child() come
// along, and events below the log level are tapped too (the listener picks what it wants).
// A listener switches on `event` and reads that event's typed fields (names.ts), as the
// coordinator's metrics and status page do.
import type { EventFields, EventLevel, EventName, Events, FieldsOf } from './events.ts';

export interface TappedEventOf<N extends EventName> {
  readonly time: number;
  readonly level: EventLevel;
  readonly event: N;
  readonly msg: string;
  readonly fields: FieldsOf<N>;
}

/** Any tapped event, discriminated by `event`. */
export type TappedEvent = { readonly [N in EventName]: TappedEventOf<N> }[EventName];

const NO_FIELDS: EventFields = Object.freeze({});

export function tapEvents(
  inner: Events,
  listener: (e: TappedEvent) => void,
  bound: EventFields = {},
): Events {
  const boundNothing = Object.keys(bound).length === 0;
  const at =
    (level: EventLevel) =>
    (event: EventName, msg: string, fields?: EventFields): void => {
      inner[level](event, msg, fields);
      // The emitter's signature (Events) made `fields` the typed fields of `event`.
      // Nothing bound (the outer tap): the emitter's fields as they are, not a copy per event.
      const all = boundNothing ? (fields ?? NO_FIELDS) : { ...bound, ...fields };
      listener({ time: Date.now(), level, event, msg, fields: all } as TappedEvent);
    };
  return {
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    debug: at('debug'),
    child: (bindings) => tapEvents(inner.child(bindings), listener, { ...bound, ...bindings }),
  };
}

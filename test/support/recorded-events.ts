// An Events sink for unit tests of parts that take one (step driver, dealer, journal): keeps every
// event as emitted, so a test can check names and fields the way a log pipeline would.
import type { EventFields, EventLevel, EventName, Events } from '../../src/events/events.ts';

export interface RecordedEvent {
  readonly level: EventLevel;
  readonly name: EventName;
  readonly text: string;
  readonly fields: EventFields;
}

export function recordEvents(): { events: Events; records: RecordedEvent[]; texts(): string } {
  const records: RecordedEvent[] = [];
  const make = (bound: EventFields): Events => {
    const at =
      (level: EventLevel) =>
      (name: EventName, text: string, fields: EventFields = {}) =>
        records.push({ level, name, text, fields: { ...bound, ...fields } });
    return {
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      debug: at('debug'),
      child: (b) => make({ ...bound, ...b }),
    };
  };
  return { events: make({}), records, texts: () => records.map((r) => r.text).join('\n') };
}

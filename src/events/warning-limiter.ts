// Warnings caused by peers, rate-limited (docs/security.md): a flood of refused connections or
// streams must not become a flood of log lines (20,000 unauthenticated streams made 5.4 MB of
// warnings in 8.6 s, issue #23). Per event name, the first few of each window are written; the
// rest are counted and said once: "... and 19,999 more auth_refused in the last 10 s".
import type { EventName, Events, FieldsArg } from './events.ts';

export const WARNINGS_PER_WINDOW = 5;
export const WARNING_WINDOW_MS = 10_000;

interface Window {
  start: number;
  written: number;
  suppressed: number;
}

export interface WarningLimiterOptions {
  readonly perWindow?: number;
  readonly windowMs?: number;
  /** Clock (tests inject one); default Date.now. */
  readonly now?: () => number;
  /** Say the count of a window when it ends even if no warning follows (default true; tests pass false). */
  readonly timers?: boolean;
}

export class WarningLimiter {
  private readonly windows = new Map<EventName, Window>();
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly events: Events,
    private readonly o: WarningLimiterOptions = {},
  ) {
    this.perWindow = o.perWindow ?? WARNINGS_PER_WINDOW;
    this.windowMs = o.windowMs ?? WARNING_WINDOW_MS;
    this.now = o.now ?? Date.now;
  }

  warn<N extends EventName>(name: N, text: string, ...fields: FieldsArg<N>): void {
    const now = this.now();
    let w = this.windows.get(name);
    if (w && now - w.start >= this.windowMs) {
      this.say(name, w, now);
      w = undefined;
    }
    if (!w) {
      w = { start: now, written: 0, suppressed: 0 };
      this.windows.set(name, w);
    }
    if (w.written < this.perWindow) {
      w.written++;
      this.events.warn(name, text, ...fields);
      return;
    }
    w.suppressed++;
    if (this.timer === undefined && this.o.timers !== false) {
      // One timer for all names: a flood that stops is still counted in the log.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flushDue();
      }, this.windowMs);
      this.timer.unref();
    }
  }

  /** Says the count of every window that has ended; a window still open keeps counting. */
  flushDue(): void {
    const now = this.now();
    for (const [name, w] of this.windows) {
      if (now - w.start < this.windowMs) continue;
      this.say(name, w, now);
      this.windows.delete(name);
    }
  }

  /** Says what every window suppressed so far (at close). */
  flush(): void {
    const now = this.now();
    for (const [name, w] of this.windows) this.say(name, w, now);
    this.windows.clear();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private say(name: EventName, w: Window, now: number): void {
    if (w.suppressed === 0) return;
    const seconds = Math.max(1, Math.round((now - w.start) / 1000));
    this.events.warn(
      'warnings_suppressed',
      `... and ${w.suppressed.toLocaleString('en-US')} more ${name} in the last ${seconds} s`,
      { suppressed_event: name, count: w.suppressed, seconds },
    );
  }
}

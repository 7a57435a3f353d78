// The coordinator's open-file limit, which the connection gate budgets from (docs/security.md,
// "Bounded before authentication"). Node itself raises the soft RLIMIT_NOFILE to the hard limit
// when it starts (PlatformInit in node.cc; test/security/connection-flood.test.ts shows it), so
// nothing here calls setrlimit: the hard limit is what a deployment sets (`ulimit -Hn`, the
// container runtime's default). What the process got is read back, said, and sized from.
import { readFileSync } from 'node:fs';
import type { Events } from '../events/events.ts';

export interface OpenFileLimit {
  readonly soft: number;
  readonly hard: number;
}

/** This process's open-file limits from /proc/self/limits (Linux), or undefined elsewhere. */
export function openFileLimit(limitsText?: string): OpenFileLimit | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!m) return undefined;
  const n = (v: string) => (v === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(v));
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

/** Where /proc/self/limits cannot be read: Linux's usual default soft limit. */
const DEFAULT_ASSUMED = 1024;

/** Says the soft limit (a warning when it is below the hard one: something lowered it) and returns it. */
export function sayOpenFileLimit(events: Events, limit = openFileLimit()): number {
  const soft = limit?.soft ?? DEFAULT_ASSUMED;
  const hard = limit?.hard ?? soft;
  const text = `open-file limit ${soft} (hard ${hard}); pre-authentication caps are sized from it`;
  if (soft < hard)
    events.warn('open_files', `${text}: raise the soft limit (ulimit -n ${hard})`, { soft, hard });
  else events.info('open_files', text, { soft, hard });
  return soft;
}

// Progress of a long model load as `model_loading` events (MPT-7B takes minutes): at most one every
// `everyMs`, none for a load that finishes sooner, and never the last tensor (model_loaded says that).

import type { Events } from './events.ts';

export interface LoadProgressOptions {
  /** Shortest time between two events; the first comes this long after the start. */
  readonly everyMs?: number;
  /** Milliseconds now (injected by tests). */
  readonly now?: () => number;
}

/** A callback for LoadOptions.onTensor that reports to `events`, naming `what` (e.g. the model dir). */
export function loadProgress(
  events: Events,
  what: string,
  o: LoadProgressOptions = {},
): (loaded: number, expected: number) => void {
  const now = o.now ?? (() => performance.now());
  const every = o.everyMs ?? 10_000;
  const started = now();
  let last = started;
  return (loaded, expected) => {
    const t = now();
    if (loaded >= expected || t - last < every) return;
    last = t;
    const percent = Math.floor((100 * loaded) / expected);
    const elapsed = Math.round((t - started) / 1000);
    events.info(
      'model_loading',
      `loading ${what}: ${loaded} of ${expected} weight tensors (${percent}%) in ${elapsed} s`,
      { loaded, expected, percent, elapsed_s: elapsed },
    );
  };
}

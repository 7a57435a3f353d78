// NATS subjects of one all-reduce round. Every subject carries run id, step and generation, so a
// round only ever subscribes to its own traffic; the frame header repeats them (see frame.ts).
// Senders are named by their index in members ++ observers: worker ids (host names) may hold dots.
import { AllReduceInputError } from './errors.ts';

/** Identifies one round: a retried step gets a new generation and thus disjoint subjects. */
export interface RoundKey {
  readonly runId: string;
  readonly step: number;
  readonly generation: number;
}

/**
 * A kind of traffic in a round, one subject token: 'ctl' is the round's own (ready, abort); each
 * algorithm names its data phases in its file (shard-owner: 'so-rs', 'so-ag'; ring: 'ring-rs', 'ring-ag').
 */
export type Phase = string;

// A NATS token may not hold '.', wildcards or whitespace; ids go into subjects unescaped.
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

export function checkToken(what: string, value: string): void {
  if (!TOKEN.test(value)) {
    throw new AllReduceInputError(
      `${what} ${JSON.stringify(value)} cannot be a NATS subject token: use 1-64 characters of A-Z a-z 0-9 _ -`,
    );
  }
}

/** `lora.<runId>.s<step>.g<generation>` — the prefix every subject of the round starts with. */
export function roundPrefix(key: RoundKey): string {
  return `lora.${key.runId}.s${key.step}.g${key.generation}`;
}

/** Control traffic (ready, abort) sent by participant `from`; `'*'` subscribes to every sender. */
export function ctlSubject(key: RoundKey, from: number | '*'): string {
  return `${roundPrefix(key)}.ctl.${from}`;
}

/** Data of `shard` in `phase`, sent by member `from`; `'*'` in either place is a one-token wildcard. */
export function dataSubject(key: RoundKey, phase: Phase, shard: number | '*', from: number | '*'): string {
  return `${roundPrefix(key)}.${phase}.${shard}.${from}`;
}

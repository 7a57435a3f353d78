// The verdict on one all-reduce round, once every member answered and the coordinator's own replica
// holds the reduced gradient: commit, or why not. Pure, so every case is a unit test
// (test/coordinator/reduce-verdict.test.ts); the driver acts on it.
import type { ReduceResult } from '../protocol/wire.ts';
import type { WorkerId } from './step-ledger.ts';

export type ReduceVerdict =
  | { readonly kind: 'commit' }
  /** Members whose round failed (timeout, disconnect, abort): retry under a new generation. */
  | { readonly kind: 'failed'; readonly errors: ReadonlyMap<WorkerId, string> }
  /** Members whose reduced gradient differs from the coordinator's: retry (nobody applied it). */
  | { readonly kind: 'gradient-mismatch'; readonly workers: readonly WorkerId[] }
  /** Members whose replica state differs: re-sync them and redo their share of the step. */
  | { readonly kind: 'diverged'; readonly workers: readonly WorkerId[] };

/**
 * `results` holds one answer per member; `own` is the checksum of the coordinator's reduced gradient
 * and `state` that of its replica. Failures win over mismatches, gradient over state: a failed round
 * proves nothing about either checksum, and a wrong gradient can come from a wrong state.
 */
export function judge(
  results: ReadonlyMap<WorkerId, ReduceResult>,
  own: { readonly gradient: string; readonly state: string },
): ReduceVerdict {
  const all = [...results];
  const failed = all.filter(([, r]) => r.error !== '');
  if (failed.length > 0) return { kind: 'failed', errors: new Map(failed.map(([id, r]) => [id, r.error])) };
  const badGrad = all.filter(([, r]) => r.checksum !== own.gradient).map(([id]) => id);
  if (badGrad.length > 0) return { kind: 'gradient-mismatch', workers: badGrad };
  const diverged = all.filter(([, r]) => r.stateChecksum !== own.state).map(([id]) => id);
  if (diverged.length > 0) return { kind: 'diverged', workers: diverged };
  return { kind: 'commit' };
}

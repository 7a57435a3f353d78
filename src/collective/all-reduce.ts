// Entry point of the gradient all-reduce: every member calls allReduceSum with its accumulator and
// gets back the elementwise sum, bitwise identical on every member (and on observers, observe.ts).
// Protocol, message format and the summation-order rule: docs/collective.md.
import { AllReduceInputError } from './errors.ts';
import { RingAllReduce } from './ring.ts';
import { Round } from './round.ts';
import { runReported } from './round-report.ts';
import { type RoundOptions, roundSpec } from './round-spec.ts';
import { ShardOwnerAllReduce } from './shard-owner.ts';

export type AllReduceAlgorithm = 'shard-owner' | 'ring';

/** n·G into the server and 2 hops (ring: 2(n-1)·G, 2(n-1) hops); on loopback as fast or faster (docs/collective.md). */
export const DEFAULT_ALGORITHM: AllReduceAlgorithm = 'shard-owner';

export interface AllReduceOptions extends RoundOptions {
  /** This member's id; must be in `members`. */
  readonly self: string;
  /** This member's contribution; every member passes the same length. Not modified. */
  readonly data: Float32Array;
  /** Every participant of a round must pass the same algorithm. Default DEFAULT_ALGORITHM. */
  readonly algorithm?: AllReduceAlgorithm;
}

/** The algorithm actually run: a ring of one member is the shard-owner case (no traffic but fan-out). */
export function effectiveAlgorithm(
  algorithm: AllReduceAlgorithm | undefined,
  members: number,
): AllReduceAlgorithm {
  const a = algorithm ?? DEFAULT_ALGORITHM;
  return a === 'ring' && members < 2 ? 'shard-owner' : a;
}

/**
 * Sums `data` over `members` for round (runId, step, generation). Resolves with a new Float32Array.
 * Rejects with AllReduceTimeoutError (names missing members and chunks), AllReduceDisconnectedError,
 * AllReducePeerAbortedError, AllReduceCancelledError (all `retryable`: retry under generation + 1),
 * or AllReduceInputError / AllReduceProtocolError (caller or configuration bug).
 */
export async function allReduceSum(o: AllReduceOptions): Promise<Float32Array> {
  const spec = roundSpec(o, o.self, o.data.length);
  if (spec.selfIndex >= spec.members.length) {
    throw new AllReduceInputError(`self ${o.self} is an observer, not a member: call observeAllReduce`);
  }
  const round = new Round(spec);
  const name = effectiveAlgorithm(o.algorithm, spec.members.length);
  const algorithm =
    name === 'ring' ? new RingAllReduce(round, o.data) : new ShardOwnerAllReduce(round, o.data);
  await runReported(round, () => algorithm.start(), {
    algorithm: name,
    role: 'member',
    onReport: o.onReport,
  });
  return algorithm.result;
}

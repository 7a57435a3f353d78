// Entry point of the gradient all-reduce: every member calls allReduceSum with its accumulator and
// gets back the elementwise sum, bitwise identical on every member (and on observers, observe.ts).
// Protocol, message format and the summation-order rule: docs/collective.md.
import { type AllReduceAlgorithm, algorithmFor } from './algorithms.ts';
import type { ContributionsReporter } from './contributions.ts';
import { AllReduceInputError } from './errors.ts';
import { prepareFrameKey } from './frame-mac.ts';
import { Round } from './round.ts';
import { runReported } from './round-report.ts';
import { type RoundOptions, roundSpec } from './round-spec.ts';

export interface AllReduceOptions extends RoundOptions {
  /** This member's id; must be in `members`. */
  readonly self: string;
  /** This member's contribution; every member passes the same length. Not modified. */
  readonly data: Float32Array;
  /** Every participant of a round must pass the same algorithm. Default DEFAULT_ALGORITHM. */
  readonly algorithm?: AllReduceAlgorithm;
  /**
   * Called once the round completed with what this member measured of each contributor while it
   * summed its shard (algorithms that have shard owners; not called by the others).
   */
  readonly onContributions?: ContributionsReporter;
  /**
   * Where to write the sum (data's length, not overlapping it), e.g. a buffer the caller keeps from
   * step to step: a fresh gradient-sized array every round costs page faults and garbage collection
   * (docs/collective.md, "Per-member cost"). Its contents are overwritten, whatever the outcome.
   * Default: a new array.
   */
  readonly into?: Float32Array;
}

/**
 * Sums `data` over `members` for round (runId, step, generation). Resolves with `into`, or a new
 * Float32Array without it.
 * Rejects with AllReduceTimeoutError (names missing members and chunks), AllReduceDisconnectedError,
 * AllReducePeerAbortedError, AllReduceCancelledError (all `retryable`: retry under generation + 1),
 * or AllReduceInputError / AllReduceProtocolError (caller or configuration bug).
 */
export async function allReduceSum(o: AllReduceOptions): Promise<Float32Array> {
  await prepareFrameKey(o.frameKey);
  const spec = roundSpec(o, o.self, o.data.length);
  if (spec.selfIndex >= spec.members.length) {
    throw new AllReduceInputError(`self ${o.self} is an observer, not a member: call observeAllReduce`);
  }
  const { name, algorithm } = algorithmFor(o.algorithm, spec.members.length);
  const round = new Round(spec, algorithm.shards?.(spec));
  const part = algorithm.member(round, o.data, resultBuffer(o.into, o.data));
  await runReported(round, () => part.start(), { algorithm: name, role: 'member', onReport: o.onReport });
  if (part.contributions) o.onContributions?.(part.contributions.report());
  return part.result;
}

/** `into` when it can hold the sum of `data` without overwriting it; else a refusal naming it. */
function resultBuffer(into: Float32Array | undefined, data: Float32Array): Float32Array {
  if (!into) return new Float32Array(data.length);
  if (into.length !== data.length) {
    throw new AllReduceInputError(`into holds ${into.length} values; data has ${data.length}`);
  }
  const start = (a: Float32Array) => a.byteOffset;
  const end = (a: Float32Array) => a.byteOffset + a.byteLength;
  if (into.buffer === data.buffer && start(into) < end(data) && start(data) < end(into)) {
    throw new AllReduceInputError('into overlaps data: the sum would overwrite parts not yet sent');
  }
  return into;
}

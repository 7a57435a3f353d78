// Typed failures of the all-reduce. The worker retries a step under a new generation when an error
// is `retryable`; the others are bugs or misconfiguration and must stop the run.
import type { FrameEvidence } from './evidence.ts';

/** Where a round was, for messages: `run r step s generation g`. */
export interface RoundLabel {
  readonly runId: string;
  readonly step: number;
  readonly generation: number;
}

const label = (r: RoundLabel) => `all-reduce of run ${r.runId} step ${r.step} generation ${r.generation}`;

export abstract class AllReduceError extends Error {
  /** True when retrying the step under generation + 1 can succeed. */
  abstract readonly retryable: boolean;
}

/** The options passed to allReduceSum / observeAllReduce are wrong (caller bug). */
export class AllReduceInputError extends AllReduceError {
  override readonly name = 'AllReduceInputError';
  readonly retryable = false;
}

/** One part the round was still waiting for when the deadline passed. */
export interface MissingPart {
  readonly member: string;
  /** 'ready' (barrier), or the data phase the part belongs to. */
  readonly phase: 'ready' | 'reduce-scatter' | 'gather';
  readonly shard: number;
  /** Chunk indices of the shard not yet received (empty for 'ready'). */
  readonly chunks: readonly number[];
}

/** The deadline passed before every part arrived; names who and what was missing. */
export class AllReduceTimeoutError extends AllReduceError {
  override readonly name = 'AllReduceTimeoutError';
  readonly retryable = true;
  readonly missingMembers: readonly string[];
  constructor(
    readonly round: RoundLabel,
    readonly timeoutMs: number,
    readonly missing: readonly MissingPart[],
  ) {
    super(
      `${label(round)} timed out after ${timeoutMs} ms waiting for ${missing.map(describePart).join('; ')}`,
    );
    this.missingMembers = [...new Set(missing.map((p) => p.member))].sort();
  }
}

function describePart(p: MissingPart): string {
  if (p.phase === 'ready') return `${p.member} (ready)`;
  return `${p.member} (${p.phase} shard ${p.shard} chunks ${ranges(p.chunks)})`;
}

// [0,1,2,5,7,8] -> "0-2,5,7-8": a 1 GiB gradient has thousands of chunks.
function ranges(xs: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++;
    out.push(i === j ? `${xs[i]}` : `${xs[i]}-${xs[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** The NATS connection dropped (or closed) while the round was in flight; messages may be lost. */
export class AllReduceDisconnectedError extends AllReduceError {
  override readonly name = 'AllReduceDisconnectedError';
  readonly retryable = true;
  constructor(
    readonly round: RoundLabel,
    why: string,
  ) {
    super(`${label(round)} aborted: NATS connection ${why}; retry the step under a new generation`);
  }
}

/** Another member left the round (its connection dropped, or its caller cancelled). */
export class AllReducePeerAbortedError extends AllReduceError {
  override readonly name = 'AllReducePeerAbortedError';
  readonly retryable = true;
  constructor(
    readonly round: RoundLabel,
    readonly member: string,
    readonly reason: string,
  ) {
    super(`${label(round)} aborted by member ${member}: ${reason}`);
  }
}

/** The caller's AbortSignal fired. */
export class AllReduceCancelledError extends AllReduceError {
  override readonly name = 'AllReduceCancelledError';
  readonly retryable = true;
  constructor(readonly round: RoundLabel) {
    super(`${label(round)} cancelled by the caller`);
  }
}

/** A peer sent a well-formed frame that contradicts ours (other vector length or chunking). */
export class AllReduceProtocolError extends AllReduceError {
  override readonly name = 'AllReduceProtocolError';
  readonly retryable = false;
  constructor(
    readonly round: RoundLabel,
    readonly member: string,
    detail: string,
    /** The offending frame, signed by `member`, when a frame is the offence (evidence.ts). */
    readonly evidence?: FrameEvidence,
  ) {
    super(`${label(round)}: member ${member} ${detail}`);
  }
}

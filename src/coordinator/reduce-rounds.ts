// The all-reduce rounds of a step (DESIGN.md §2, steps 4-5): every attempt is a new generation (it
// names the NATS subjects, so an abandoned round's frames never mix with its retry's); starting one
// tells its members and starts the coordinator's own observation of the sum; aborting one cancels
// that observation and tells the members; a retry waits 200 ms, doubling to 5 s while rounds keep
// failing, so a NATS server that is restarting is not hammered. The step driver decides when.
import type { Events } from '../events/events.ts';
import { reduceStartMessage, stepAbortMessage } from '../protocol/messages.ts';
import { type FinalGradient, finalizeGradient } from '../train/replica.ts';
import type { WorkerLink } from './members.ts';
import type { WorkerId } from './step-ledger.ts';

/** First wait before a retry, and the longest (ms). */
export const RETRY_FIRST_MS = 200;
export const RETRY_MAX_MS = 5000;

/** The wait before the retry that follows `failures` failed rounds in a row (the first: 0). */
export function retryWait(failures: number): number {
  return Math.min(RETRY_FIRST_MS * 2 ** failures, RETRY_MAX_MS);
}

/**
 * Receives the reduced gradient SUM of a step as a non-contributing replica (src/collective).
 * `signal` fires when the driver gives the round up (a member was lost, another failed).
 */
export type ObserveReduce = (
  step: number,
  generation: number,
  members: readonly string[],
  signal: AbortSignal,
  /** Node name of each member ('' when unknown): the hierarchical algorithm's topology. */
  nodes: readonly string[],
  /** Raw Ed25519 keys of members ++ observers when every participant has one (frames are checked). */
  participantKeys?: readonly Uint8Array[],
) => Promise<Float32Array>;

export interface ReduceRound {
  readonly step: number;
  readonly generation: number;
  readonly members: readonly WorkerId[];
  /** Supervised tokens of the step: the sum is divided by them. */
  readonly tokens: number;
  readonly cancel: AbortController;
}

/** How a round's observation ended; neither is called once the round was aborted. */
export interface RoundEnd {
  /** The coordinator's replica has the step's gradient: mean over the tokens, clipped. */
  reduced(own: FinalGradient): void;
  /** It did not get it (deadline, NATS gone, a member's bytes refused by the observer). */
  failed(err: Error): void;
}

export interface ReduceRoundsOptions {
  /** Id under which the coordinator observes each round (members wait for it). */
  readonly observerId: string;
  readonly algorithm: Parameters<typeof reduceStartMessage>[0]['algorithm'];
  readonly maxGradNorm: number;
  /** Generation of the first round (see StepDriverOptions.firstGeneration). */
  readonly firstGeneration: number;
  readonly observe: ObserveReduce;
  readonly events: Events;
  /** Raw Ed25519 public key the coordinator's observer signs its frames with. */
  readonly observerPublicKey?: Uint8Array;
}

export class ReduceRounds {
  private generation: number;
  /** Failed rounds of the current step in a row: spaces out retries. */
  private failures = 0;

  constructor(private readonly o: ReduceRoundsOptions) {
    this.generation = o.firstGeneration - 1;
  }

  /** The next round of `step` with `members`, under a new generation (not started yet). */
  open(step: number, tokens: number, members: readonly WorkerId[]): ReduceRound {
    return { step, generation: ++this.generation, members, tokens, cancel: new AbortController() };
  }

  /**
   * Tells the members (`links`, in the order of `round.members`) to reduce, and starts observing the
   * sum. The driver enters the round's phase first: a member may answer before this returns.
   */
  start(
    round: ReduceRound,
    links: readonly WorkerLink[],
    end: RoundEnd,
    memberKeys: readonly (Uint8Array | undefined)[] = [],
  ): void {
    const { step, tokens } = round;
    const keys = memberKeys.length === links.length ? this.participantKeys(memberKeys) : undefined;
    // Every member and the observer derive the topology from this one list.
    const nodes = links.map((l) => l.nodeName ?? '');
    const message = reduceStartMessage({
      step,
      generation: round.generation,
      members: [...round.members],
      totalSupervisedTokens: tokens,
      observers: [this.o.observerId],
      algorithm: this.o.algorithm,
      nodes,
      ...(keys ? { participantKeys: { keys: keys.map((k) => Buffer.from(k)) } } : {}),
    });
    for (const m of links) m.send(message);
    this.o.events.debug(
      'reduce_started',
      `step ${step} generation ${round.generation}: all-reduce of ${round.members.length} member(s)`,
      {
        step,
        generation: round.generation,
        members: [...round.members],
      },
    );
    const { signal } = round.cancel;
    this.o.observe(step, round.generation, round.members, signal, nodes, keys).then(
      (sum) => {
        if (!signal.aborted) end.reduced(finalizeGradient(sum, tokens, this.o.maxGradNorm));
      },
      (err: Error) => {
        if (!signal.aborted) end.failed(err);
      },
    );
  }

  /**
   * The frame signing keys of the members (`memberKeys`, in their order) and the observer, when every
   * one of them has one; else none, and no participant checks signatures (finetune's in-process
   * worker has none; a run with a frame key refuses a worker without one at its Ready).
   */
  private participantKeys(members: readonly (Uint8Array | undefined)[]): Uint8Array[] | undefined {
    const observer = this.o.observerPublicKey;
    const all = [...members, observer];
    return all.every((k) => k !== undefined) ? all : undefined;
  }

  /** Gives `round` up: stops observing it and tells the members still connected (`link` finds them). */
  abort(round: ReduceRound, reason: string, link: (id: WorkerId) => WorkerLink | undefined): void {
    this.o.events.warn(
      'reduce_aborted',
      `step ${round.step} generation ${round.generation} aborted: ${reason}`,
      {
        step: round.step,
        generation: round.generation,
        reason,
        members: [...round.members],
      },
    );
    round.cancel.abort();
    const abort = stepAbortMessage(round.step, round.generation, reason);
    for (const id of round.members) link(id)?.send(abort);
  }

  /** After a failed round: calls `again` once the backoff has passed (it checks it is still due). */
  retry(step: number, again: () => void): void {
    const wait = retryWait(this.failures);
    this.failures++;
    this.o.events.info('reduce_retry', `retrying step ${step} under a new generation in ${wait} ms`, {
      step,
      wait_ms: wait,
    });
    setTimeout(again, wait).unref();
  }

  /** `round` is committed (every checksum agreed): the next failure waits the shortest time again. */
  committed(round: ReduceRound): void {
    this.failures = 0;
    this.o.events.debug(
      'reduce_agreed',
      `step ${round.step} generation ${round.generation}: checksums agree`,
      {
        step: round.step,
        generation: round.generation,
      },
    );
  }
}

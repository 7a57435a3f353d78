// Whose word a blame is (docs/security.md, "Blame only with evidence"). A member may say another
// member's all-reduce data was bad (ReduceResult.blame), but frames prove no sender yet (one frame
// key per run), so its word alone never costs the accused anything: one insider could otherwise
// have every honest worker dropped (issue #23: an invented generation, both honest workers gone in
// 0.8 s). The coordinator acts on its own observation (step-driver.ts); here a blame is judged:
//   - false: it names a round this coordinator never opened, another step's round, or someone (the
//     accuser or the accused) who was not a member of it. Only the accuser can have made it up:
//     the accuser pays.
//   - proven: the blame comes with a frame the accused signed (src/collective/evidence.ts proves it
//     with the run's frame key and the round's participant keys from ReduceStart), and the signed
//     header names this run, this round, and the round's layout (or, for a layout offence, another
//     one). Only the accused can have made that frame: the accused pays, the accuser nothing.
//   - unverifiable: a real round, nothing the coordinator saw supports or refutes it. The round
//     fails (the accuser did not reduce) and is retried; the accused pays nothing. An accuser that
//     keeps stopping a step's rounds with such words (MAX_UNVERIFIED_PER_STEP) pays for it.
// Pure bookkeeping: the driver acts on the verdict.
import { checkFrameEvidence, type FrameEvidence } from '../collective/evidence.ts';
import { runHash } from '../collective/frame.ts';
import type { GradientEncoding } from '../collective/gradient-encoding.ts';
import { publicKeyFromRaw } from '../protocol/frame-evidence.ts';

/** Unverifiable blames one member may make in one step before it is the one refused. */
export const MAX_UNVERIFIED_PER_STEP = 3;
/** Rounds remembered to tell a late honest blame from an invented one. */
const ROUNDS_KEPT = 256;

export interface OpenedRound {
  readonly step: number;
  readonly generation: number;
  readonly members: readonly string[];
  /**
   * Raw Ed25519 keys of members ++ observers as ReduceStart handed them out (a frame's `from`
   * indexes them); absent: frames were not signed, so no frame proves its sender.
   */
  readonly participantKeys?: readonly Uint8Array[];
}

/** What a signed frame of this run must say to be a frame of one of its rounds. */
export interface FrameRules {
  readonly runId: string;
  /** The run's frame key (the MAC of a non-finite frame's payload is checked under it). */
  readonly frameKey: Uint8Array;
  readonly encoding: GradientEncoding;
  /** Elements of the whole gradient vector. */
  readonly length: number;
}

export type AccusationVerdict =
  | { readonly kind: 'false'; readonly why: string }
  /** The accused signed the offending frame: `why` says what it proves. */
  | { readonly kind: 'proven'; readonly why: string }
  | {
      readonly kind: 'unverifiable';
      /** Unverifiable blames of this accuser in this step, this one included. */
      readonly count: number;
      /** The accuser has reached MAX_UNVERIFIED_PER_STEP: refuse it. */
      readonly penalise: boolean;
    };

export class Accusations {
  private readonly rounds = new Map<number, OpenedRound>();
  /** `step:accuser` → unverifiable blames. */
  private readonly unverified = new Map<string, number>();
  private readonly hash: number | undefined;

  /** `rules` absent: frames are not attributable in this run (finetune), no blame is proven. */
  constructor(private readonly rules?: FrameRules) {
    this.hash = rules ? runHash(rules.runId) : undefined;
  }

  /**
   * A round was opened (its generation is now a real one). `keys`: each participant's raw frame key
   * (members ++ observers) as ReduceStart hands them out; kept only when every one signs.
   */
  opened(round: OpenedRound, keys: readonly (Uint8Array | undefined)[] = []): void {
    const signed = (ks: typeof keys): ks is readonly Uint8Array[] =>
      ks.length > 0 && ks.every((k) => k !== undefined);
    this.rounds.set(round.generation, signed(keys) ? { ...round, participantKeys: keys } : round);
    if (this.rounds.size > ROUNDS_KEPT) this.rounds.delete(this.rounds.keys().next().value!);
  }

  /** A step committed: its counts are done with. */
  committed(step: number): void {
    for (const key of this.unverified.keys())
      if (Number(key.split(':', 1)[0]) <= step) this.unverified.delete(key);
  }

  /**
   * `evidence`: the frame the accuser sent with its blame (checked, never trusted). Without it, or
   * when it proves nothing, the blame is judged as a word alone.
   */
  judge(
    accuser: string,
    accused: string,
    step: number,
    generation: number,
    evidence?: FrameEvidence,
  ): AccusationVerdict {
    const round = this.rounds.get(generation);
    if (!round)
      return { kind: 'false', why: `generation ${generation} was never opened by this coordinator` };
    if (round.step !== step) {
      return {
        kind: 'false',
        why: `generation ${generation} was a round of step ${round.step}, not ${step}`,
      };
    }
    if (!round.members.includes(accuser)) {
      return { kind: 'false', why: `${accuser} was not a member of generation ${generation}` };
    }
    if (!round.members.includes(accused)) {
      return { kind: 'false', why: `${accused} was not a member of generation ${generation}` };
    }
    if (evidence) {
      const why = this.proof(round, accused, evidence);
      if (why.proven) return { kind: 'proven', why: why.text };
    }
    const key = `${step}:${accuser}`;
    const count = (this.unverified.get(key) ?? 0) + 1;
    this.unverified.set(key, count);
    return { kind: 'unverifiable', count, penalise: count >= MAX_UNVERIFIED_PER_STEP };
  }

  /** Whether `e` proves `accused` sent a bad frame in `round` (text: what, or why not). */
  proof(round: OpenedRound, accused: string, e: FrameEvidence): { proven: boolean; text: string } {
    const rules = this.rules;
    const keys = round.participantKeys;
    if (!rules || !keys) return { proven: false, text: 'frames of this round are not signed' };
    const participants = [...round.members];
    const v = checkFrameEvidence(e, rules.frameKey, (from) => {
      const raw = keys[from];
      // A key the coordinator handed out itself; still, a bad one proves nothing rather than throw.
      try {
        return raw ? publicKeyFromRaw(raw, `participant key ${from}`) : undefined;
      } catch {
        return undefined;
      }
    });
    if (!v.proven) return { proven: false, text: v.why };
    const h = v.header;
    if (h.runHash !== this.hash) return { proven: false, text: 'the signed frame is of another run' };
    if (h.step !== round.step || h.generation !== round.generation) {
      return {
        proven: false,
        text: `the signed frame is of step ${h.step} generation ${h.generation}, not the blamed round`,
      };
    }
    if (participants[h.from] !== accused) {
      return { proven: false, text: `the signed frame is participant ${h.from}'s, not ${accused}'s` };
    }
    const encoding = h.encoding ?? 'f32';
    const sameLayout = h.totalLength === rules.length && encoding === rules.encoding;
    if (e.reason === 'layout') {
      return sameLayout
        ? { proven: false, text: "the signed header has the round's layout" }
        : {
            proven: true,
            text: `it signed a frame of ${h.totalLength} ${encoding} elements in a round of ${rules.length} ${rules.encoding}`,
          };
    }
    if (!sameLayout) return { proven: false, text: "the signed frame does not have the round's layout" };
    return {
      proven: true,
      text:
        e.reason === 'nonfinite'
          ? `it signed a frame with non-finite values (shard ${h.shard} chunk ${h.chunk})`
          : `it signed two different copies of shard ${h.shard} chunk ${h.chunk}`,
    };
  }
}

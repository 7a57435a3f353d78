// Whose word a blame is (docs/security.md, "Blame only with evidence"). A member may say another
// member's all-reduce data was bad (ReduceResult.blame), but frames prove no sender yet (one frame
// key per run), so its word alone never costs the accused anything: one insider could otherwise
// have every honest worker dropped (issue #23: an invented generation, both honest workers gone in
// 0.8 s). The coordinator acts on its own observation (step-driver.ts); here a blame is judged:
//   - false: it names a round this coordinator never opened, another step's round, or someone (the
//     accuser or the accused) who was not a member of it. Only the accuser can have made it up:
//     the accuser pays.
//   - unverifiable: a real round, nothing the coordinator saw supports or refutes it. The round
//     fails (the accuser did not reduce) and is retried; the accused pays nothing. An accuser that
//     keeps stopping a step's rounds with such words (MAX_UNVERIFIED_PER_STEP) pays for it.
// Pure bookkeeping: the driver acts on the verdict.

/** Unverifiable blames one member may make in one step before it is the one refused. */
export const MAX_UNVERIFIED_PER_STEP = 3;
/** Rounds remembered to tell a late honest blame from an invented one. */
const ROUNDS_KEPT = 256;

export interface OpenedRound {
  readonly step: number;
  readonly generation: number;
  readonly members: readonly string[];
}

export type AccusationVerdict =
  | { readonly kind: 'false'; readonly why: string }
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

  /** A round was opened (its generation is now a real one). */
  opened(round: OpenedRound): void {
    this.rounds.set(round.generation, round);
    if (this.rounds.size > ROUNDS_KEPT) this.rounds.delete(this.rounds.keys().next().value!);
  }

  /** A step committed: its counts are done with. */
  committed(step: number): void {
    for (const key of this.unverified.keys())
      if (Number(key.split(':', 1)[0]) <= step) this.unverified.delete(key);
  }

  judge(accuser: string, accused: string, step: number, generation: number): AccusationVerdict {
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
    const key = `${step}:${accuser}`;
    const count = (this.unverified.get(key) ?? 0) + 1;
    this.unverified.set(key, count);
    return { kind: 'unverifiable', count, penalise: count >= MAX_UNVERIFIED_PER_STEP };
  }
}

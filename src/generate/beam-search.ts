// Beam search as transformers' `generate` runs it (num_beams > 1, do_sample false; its vectorised
// `_beam_search`, one prompt): every step keeps the 2·num_beams best continuations of all running
// beams by summed log-probability; those ending in EOS (or reaching max_new_tokens) among the top
// num_beams become finished hypotheses scored sum / length^length_penalty; the num_beams best
// non-finished continue. It stops when no running beam can beat the worst finished one (the
// early_stopping=False heuristic), when early_stopping=True and num_beams are finished, or at the
// length limit. Scores are float32 sums, as torch keeps them. A pure state machine: the caller
// scores the running beams (beamCandidates: log-softmax + each beam's score, the best `keep` over all
// beams) and moves its KV cache rows as `step` says.
import type { BeamCandidates } from './beam-candidates.ts';

export interface BeamSearchSettings {
  readonly numBeams: number;
  readonly maxNewTokens: number;
  readonly eosTokenId: number | null;
  /** transformers' default 1.0: score = sum of log-probs / generated length^length_penalty. */
  readonly lengthPenalty: number;
  /** transformers' default false (its heuristic); true stops once num_beams hypotheses are done. */
  readonly earlyStopping: boolean | 'never';
}

interface Hypothesis {
  readonly tokens: readonly number[];
  readonly score: number;
}

interface Slot extends Hypothesis {
  readonly done: boolean;
}

interface Candidate extends Hypothesis {
  readonly parent: number;
  readonly hits: boolean;
}

const f32 = Math.fround;
const PENALTY = -1e9;

/** Indices of the n best of `scores` (stable: the earlier index wins a tie). */
function bestIndices(scores: readonly number[], n: number): number[] {
  return scores
    .map((s, i) => ({ s, i }))
    .sort((a, b) => b.s - a.s || a.i - b.i)
    .slice(0, n)
    .map((x) => x.i);
}

export class BeamSearch {
  private running: Hypothesis[];
  private finished: Slot[];
  private generated = 0;
  private improvable = true;
  private finishedAll = false;

  constructor(readonly s: BeamSearchSettings) {
    if (!Number.isInteger(s.numBeams) || s.numBeams < 2)
      throw new Error(`num_beams ${s.numBeams}: expected >= 2`);
    if (!Number.isInteger(s.maxNewTokens) || s.maxNewTokens < 1)
      throw new Error(`max_new_tokens ${s.maxNewTokens}: expected >= 1`);
    // Only the first beam starts live, so the identical copies of the prompt do not all pick the same token.
    this.running = Array.from({ length: s.numBeams }, (_, i) => ({
      tokens: [],
      score: i === 0 ? 0 : f32(PENALTY),
    }));
    this.finished = Array.from({ length: s.numBeams }, () => ({
      tokens: [],
      score: f32(PENALTY),
      done: false,
    }));
  }

  get done(): boolean {
    return this.finishedAll;
  }

  /** The best running hypothesis so far (what a stream shows). */
  get leader(): readonly number[] {
    return (this.running[0] as Hypothesis).tokens;
  }

  /** The answer: the best finished hypothesis (valid once done). */
  get best(): readonly number[] {
    return (this.finished[0] as Slot).tokens;
  }

  /** Each running beam's summed log-probability (the offsets `beamCandidates` adds). */
  get scores(): Float32Array {
    return Float32Array.from(this.running, (h) => h.score);
  }

  /** How many continuations a step needs: 2·num_beams (transformers keeps that many). */
  get keep(): number {
    return Math.max(2, 1 + (this.s.eosTokenId === null ? 0 : 1)) * this.s.numBeams;
  }

  /**
   * One step from the best `keep` continuations of the running beams (best first). Returns, for the
   * next step, each new beam's parent row and its new token; the search is `done` afterwards or not.
   */
  step(best: BeamCandidates): { readonly parents: Int32Array; readonly tokens: Int32Array } {
    const { numBeams: nb, eosTokenId: eos, lengthPenalty: lp, earlyStopping } = this.s;
    if (this.finishedAll) throw new Error('BeamSearch.step: the search is over');
    const v = best.vocab;
    if (best.flat.length !== Math.min(this.keep, nb * v))
      throw new Error(`BeamSearch.step: ${best.flat.length} candidates, expected ${this.keep}`);
    const atLimit = this.generated + 1 >= this.s.maxNewTokens;
    const candidates: Candidate[] = Array.from(best.flat, (flat, i) => {
      const parent = Math.floor(flat / v);
      const token = flat % v;
      return {
        parent,
        tokens: [...(this.running[parent] as Hypothesis).tokens, token],
        score: best.scores[i] as number,
        hits: token === eos || atLimit,
      };
    });

    // e. the best num_beams candidates that did not just finish keep running
    const runScores = candidates.map((c) => (c.hits ? f32(c.score + PENALTY) : c.score));
    const nextRunning = bestIndices(runScores, nb).map((i) => ({
      ...(candidates[i] as Candidate),
      score: runScores[i] as number,
    }));

    // f. candidates among the top num_beams that finished join the finished hypotheses if better
    const lengthNorm = (this.generated + 1) ** lp;
    const allFull = this.finished.every((f) => f.done) && earlyStopping === true;
    const fresh = candidates.map((c, k): Slot => {
      const done = c.hits && k < nb;
      let score = f32(c.score / lengthNorm);
      if (allFull) score = f32(score + PENALTY);
      if (!this.improvable) score = f32(score + PENALTY);
      if (!done) score = f32(score + PENALTY);
      return { tokens: c.tokens, score, done };
    });
    const merged = [...this.finished, ...fresh];
    this.finished = bestIndices(
      merged.map((m) => m.score),
      nb,
    ).map((i) => merged[i] as Slot);

    this.running = nextRunning;
    this.generated += 1;

    // g. can a running beam still beat the worst finished hypothesis?
    const hypotheticalLength = earlyStopping === 'never' && lp > 0 ? this.s.maxNewTokens : this.generated;
    const bestPossible = f32((this.running[0] as Hypothesis).score / hypotheticalLength ** lp);
    const worst = Math.min(...this.finished.map((f) => f.score));
    this.improvable = this.improvable && this.finished.some((f) => bestPossible > (f.done ? worst : PENALTY));
    const everyFinished = this.finished.every((f) => f.done);
    this.finishedAll =
      !this.improvable || (everyFinished && earlyStopping === true) || candidates.every((c) => c.hits);
    return {
      parents: Int32Array.from(nextRunning, (c) => c.parent),
      tokens: Int32Array.from(nextRunning, (c) => c.tokens[c.tokens.length - 1] as number),
    };
  }
}

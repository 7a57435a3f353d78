// Which contributions of a round the coordinator refuses, on what the members measured rather than
// on what each contributor said of itself (docs/security.md, "Contributions measured by peers").
// With shard-owner, the owner of each shard sums every member's part of it and reports each
// contributor's sum of squares (src/collective/contributions.ts); the contributor's measured norm is
// the square root of its sums over all owners. A contribution is refused when:
//   - unmeasured: an owner's report does not list exactly the round's members (an owner that
//     withholds its measures would switch the check off; it is the one refused);
//   - lying_norm: its measured norm exceeds the sum of the norms it reported for its micro-batches
//     (the norm of a sum is at most the sum of the norms), beyond float32 rounding;
//   - outlier: its measured norm per supervised token exceeds `factor` x the median of the other
//     contributors' (only upward: a small gradient cannot blow the step up). Needs one other.
// Pure, so each case is a unit test (test/coordinator/contribution-check.test.ts).
import type { ReduceResult } from '../protocol/wire.ts';
import type { WorkerId } from './step-ledger.ts';

/** Default --contribution_norm_factor: far above honest spread (the outlier report fires at 50x), far below 1e30. */
export const CONTRIBUTION_NORM_FACTOR = 1000;
/** Slack on "measured <= sum of reported norms": float32 accumulation, not a lie. */
const ROUNDING = 1e-3;

export type RefusalKind = 'unmeasured' | 'lying_norm' | 'outlier';

export interface RefusedContribution {
  readonly worker: WorkerId;
  readonly kind: RefusalKind;
  /** Its norm as the owners measured it (NaN for `unmeasured`). */
  readonly measured: number;
  readonly why: string;
}

export interface SelfReport {
  /** Sum of the gradient norms it reported for its micro-batches of the step. */
  readonly normSum: number;
  readonly tokens: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/**
 * `results`: one answer per member of the round (in `members` order). `selfReports`: the ledger's
 * view per worker (absent: it computed nothing this step). `factor` 0 turns the outlier test off.
 */
export function checkContributions(
  members: readonly WorkerId[],
  results: ReadonlyMap<WorkerId, Pick<ReduceResult, 'contributions'>>,
  selfReports: ReadonlyMap<WorkerId, SelfReport>,
  factor = CONTRIBUTION_NORM_FACTOR,
): RefusedContribution[] {
  const unmeasured = members.filter((owner) => {
    const c = results.get(owner)?.contributions ?? [];
    return c.length !== members.length || c.some((x, i) => x.member !== members[i] || !(x.sumSquares >= 0));
  });
  if (unmeasured.length > 0) {
    return unmeasured.map((worker) => ({
      worker,
      kind: 'unmeasured',
      measured: Number.NaN,
      why: `its all-reduce answer does not carry a measure of each of the ${members.length} contributors to its shard`,
    }));
  }
  const sq = new Float64Array(members.length);
  for (const owner of members) {
    for (const [i, c] of results.get(owner)!.contributions.entries()) sq[i]! += c.sumSquares;
  }
  const norms = [...sq].map(Math.sqrt);
  const out: RefusedContribution[] = [];
  const perToken = members.map((w, i) => {
    const t = selfReports.get(w)?.tokens ?? 0;
    return t > 0 ? norms[i]! / t : undefined;
  });
  members.forEach((worker, i) => {
    const measured = norms[i]!;
    const said = selfReports.get(worker)?.normSum ?? 0;
    if (!(measured <= said * (1 + ROUNDING) + 1e-12)) {
      out.push({
        worker,
        kind: 'lying_norm',
        measured,
        why: `its contribution measures ${measured.toPrecision(3)} by the shard owners, more than the ${said.toPrecision(3)} its micro-batch norms add up to`,
      });
      return;
    }
    const mine = perToken[i];
    const others = perToken.filter((x, j): x is number => j !== i && x !== undefined);
    if (factor <= 0 || mine === undefined || others.length === 0) return;
    const ref = median(others);
    if (mine > factor * ref) {
      out.push({
        worker,
        kind: 'outlier',
        measured,
        why: `its contribution measures ${mine.toPrecision(3)} per supervised token by the shard owners, more than ${factor} x the others' median ${ref.toPrecision(3)}`,
      });
    }
  });
  return out;
}

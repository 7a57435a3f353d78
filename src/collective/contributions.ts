// What the owner of a shard measures of each contributor while it sums the shard (docs/security.md,
// "Contributions measured by peers"): the sum of squares of every member's part, in float64 so a
// 1e30 gradient does not overflow the measure. The coordinator adds each contributor's sums over
// all owners and compares them with what the contributor said of itself and with the others
// (src/coordinator/contribution-check.ts): a worker's self-reported norm alone proves nothing.

export interface ContributionNorm {
  readonly member: string;
  /** Sum of squares of its part of this owner's shard. */
  readonly sumSquares: number;
}

export type ContributionsReporter = (norms: readonly ContributionNorm[]) => void;

export class ContributionNorms {
  private readonly sums: Float64Array;

  constructor(private readonly members: readonly string[]) {
    this.sums = new Float64Array(members.length);
  }

  /** Adds the squares of `part`, member `m`'s values of one chunk, to its sum. */
  add(m: number, part: Float32Array): void {
    let s = 0;
    for (let i = 0; i < part.length; i++) s += part[i]! * part[i]!;
    this.sums[m]! += s;
  }

  /** Adds `s`, the squares of member `m`'s values of one chunk summed as add() does (float-sum.ts). */
  addSquares(m: number, s: number): void {
    this.sums[m]! += s;
  }

  /** Per member, in member order. */
  report(): ContributionNorm[] {
    return this.members.map((member, m) => ({ member, sumSquares: this.sums[m]! }));
  }
}

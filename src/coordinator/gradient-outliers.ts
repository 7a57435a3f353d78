// Which workers' gradients look unlike the others' in one step (docs/security.md, "Outliers"): a
// report, never a rejection. Each worker's typical gradient size is the median, over the
// micro-batches it computed in the step, of (gradient norm / supervised tokens); the step's
// reference is the median of those per-worker values, which one odd worker cannot move far; a
// worker is an outlier when its value is more than OUTLIER_FACTOR times the reference or less than
// 1/OUTLIER_FACTOR of it. With fewer than 3 workers in a step nobody can tell which of two is odd:
// no report. Pure.
import type { WorkerId } from './step-ledger.ts';

/** Far outside the spread of honest micro-batches (a few x), far inside a forged +1e6 gradient. */
export const OUTLIER_FACTOR = 50;

export interface GradientOutlier {
  readonly worker: WorkerId;
  /** Median norm per supervised token of its micro-batches. */
  readonly perToken: number;
  /** The step's reference: the median over workers of their median norm per supervised token. */
  readonly othersPerToken: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** `perToken`: for each worker, norm / tokens of each micro-batch it computed (tokens > 0 only). */
export function gradientOutliers(
  perToken: ReadonlyMap<WorkerId, readonly number[]>,
  factor = OUTLIER_FACTOR,
): GradientOutlier[] {
  const typical = [...perToken].filter(([, xs]) => xs.length > 0).map(([w, xs]) => [w, median(xs)] as const);
  if (typical.length < 3) return [];
  const ref = median(typical.map(([, m]) => m));
  return typical
    .filter(([, m]) => m > factor * ref || m * factor < ref)
    .map(([worker, m]) => ({ worker, perToken: m, othersPerToken: ref }));
}

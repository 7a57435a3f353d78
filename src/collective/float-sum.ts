// Elementwise float32 sums for the all-reduce, each addition rounded to float32 (a Float32Array store
// of a double sum is correctly rounded float32 addition). With `check`, the same pass also returns
// Σ x·0 over the results: 0 when every result is finite, NaN otherwise. A finite sum proves its parts
// finite (finite + non-finite is never finite), so the finiteness check of the parts costs no pass.
//
// Each function runs the compiled loops of native/float-kernels when that addon is built
// (float-kernels.ts: the same float32 bytes, 3x to 10x faster), else the JavaScript loops below
// (`jsFloatSums`, also what the tests hold the addon to).
import { nativeFloatKernels as native } from './float-kernels.ts';

/** out[i] = a[i] + b[i]; returns 0, or NaN when `check` and some out[i] is not finite. */
function sumIntoJs(out: Float32Array, a: Float32Array, b: Float32Array, check: boolean): number {
  const n = out.length;
  if (!check) {
    for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
    return 0;
  }
  let poison = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]! + b[i]!;
    out[i] = x;
    poison += out[i]! * 0;
  }
  return poison;
}

/** out[i] += a[i]; returns 0, or NaN when `check` and some out[i] is not finite. */
function addIntoJs(out: Float32Array, a: Float32Array, check: boolean): number {
  const n = out.length;
  if (!check) {
    for (let i = 0; i < n; i++) out[i]! += a[i]!;
    return 0;
  }
  let poison = 0;
  for (let i = 0; i < n; i++) {
    out[i]! += a[i]!;
    poison += out[i]! * 0;
  }
  return poison;
}

// The shard owner's sums also measure each contributor (contributions.ts) in the same pass, so its
// parts are read from memory once: a separate pass cost about as much as the sum itself (profile,
// docs/collective.md "Per-member cost", third pass). Each square is summed in float64 in index
// order, starting from 0 per call, as ContributionNorms.add does, so the measures are the same bits.

/** out[i] = a[i] + b[i]; sets squares[0] = Σ a[i]², squares[1] = Σ b[i]²; returns Σ out[i]·0. */
function sumMeasuredJs(out: Float32Array, a: Float32Array, b: Float32Array, squares: Float64Array): number {
  const n = out.length;
  let poison = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    sa += x * x;
    sb += y * y;
    out[i] = x + y;
    poison += out[i]! * 0;
  }
  squares[0] = sa;
  squares[1] = sb;
  return poison;
}

/** out[i] += a[i]; sets squares[0] = Σ a[i]²; returns Σ out[i]·0 (NaN when some out[i] is not finite). */
function addMeasuredJs(out: Float32Array, a: Float32Array, squares: Float64Array): number {
  const n = out.length;
  let poison = 0;
  let sa = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    sa += x * x;
    out[i]! += x;
    poison += out[i]! * 0;
  }
  squares[0] = sa;
  return poison;
}

function sumOfSquaresJs(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return s;
}

// x·0 is 0 for every finite x, NaN otherwise: one multiply-add per element, no branch.
function firstNonFiniteJs(xs: Float32Array): number {
  let poison = 0;
  for (let i = 0; i < xs.length; i++) poison += xs[i]! * 0;
  if (poison === 0) return -1;
  return xs.findIndex((x) => !Number.isFinite(x));
}

function copyCheckedJs(dst: Float32Array, src: Float32Array): number {
  if (dst.length !== src.length) throw new RangeError('copyChecked: dst and src differ in length');
  dst.set(src);
  return firstNonFiniteJs(dst);
}

/** The JavaScript loops, whichever implementation this process runs (for tests and benchmarks). */
export const jsFloatSums = {
  sumInto: sumIntoJs,
  addInto: addIntoJs,
  sumMeasured: sumMeasuredJs,
  addMeasured: addMeasuredJs,
  sumOfSquares: sumOfSquaresJs,
  firstNonFinite: firstNonFiniteJs,
  copyChecked: copyCheckedJs,
} as const;

/** out[i] = a[i] + b[i]; returns 0, or NaN when `check` and some out[i] is not finite. */
export function sumInto(out: Float32Array, a: Float32Array, b: Float32Array, check: boolean): number {
  if (native === undefined) return sumIntoJs(out, a, b, check);
  return native.sum(out, a, b) && check ? Number.NaN : 0;
}

/** out[i] += a[i]; returns 0, or NaN when `check` and some out[i] is not finite. */
export function addInto(out: Float32Array, a: Float32Array, check: boolean): number {
  if (native === undefined) return addIntoJs(out, a, check);
  return native.add(out, a) && check ? Number.NaN : 0;
}

/**
 * out[i] = a[i] + b[i]; sets squares[0] = Σ a[i]², squares[1] = Σ b[i]² (float64); returns 0, or
 * NaN when some out[i] is not finite.
 */
export function sumMeasured(
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  squares: Float64Array,
): number {
  if (native === undefined) return sumMeasuredJs(out, a, b, squares);
  return native.sumMeasured(out, a, b, squares) ? Number.NaN : 0;
}

/** out[i] += a[i]; sets squares[0] = Σ a[i]²; returns 0, or NaN when some out[i] is not finite. */
export function addMeasured(out: Float32Array, a: Float32Array, squares: Float64Array): number {
  if (native === undefined) return addMeasuredJs(out, a, squares);
  return native.addMeasured(out, a, squares) ? Number.NaN : 0;
}

/** Σ a[i]² in float64 (the JavaScript loop sums in index order; the addon in eight partial sums). */
export function sumOfSquares(a: Float32Array): number {
  return native === undefined ? sumOfSquaresJs(a) : native.squares(a);
}

/** Index of the first NaN or ±Infinity in `xs`, or -1 (one pass, no branch while all are finite). */
export function firstNonFinite(xs: Float32Array): number {
  if (native === undefined) return firstNonFiniteJs(xs);
  return native.anyNonFinite(xs) ? xs.findIndex((x) => !Number.isFinite(x)) : -1;
}

/**
 * dst = src (same length, not overlapping); returns the index of the first NaN or ±Infinity, or -1.
 * The copy is made either way.
 */
export function copyChecked(dst: Float32Array, src: Float32Array): number {
  if (native === undefined) return copyCheckedJs(dst, src);
  return native.copyChecked(dst, src) ? src.findIndex((x) => !Number.isFinite(x)) : -1;
}

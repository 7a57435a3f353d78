// Elementwise float32 sums for the all-reduce, each addition rounded to float32 (a Float32Array store
// of a double sum is correctly rounded float32 addition). With `check`, the same pass also returns
// Σ x·0 over the results: 0 when every result is finite, NaN otherwise. A finite sum proves its parts
// finite (finite + non-finite is never finite), so the finiteness check of the parts costs no pass.

/** out[i] = a[i] + b[i]; returns 0, or NaN when `check` and some out[i] is not finite. */
export function sumInto(out: Float32Array, a: Float32Array, b: Float32Array, check: boolean): number {
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
export function addInto(out: Float32Array, a: Float32Array, check: boolean): number {
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
export function sumMeasured(
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  squares: Float64Array,
): number {
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
export function addMeasured(out: Float32Array, a: Float32Array, squares: Float64Array): number {
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

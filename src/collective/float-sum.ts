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

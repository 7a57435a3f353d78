// ALiBi slopes and the additive attention bias (ALiBi + causal mask + key padding) exactly as MPT
// builds them (HF build_mpt_alibi_tensor / llm-foundry gen_slopes), as host arrays.

/** Score given to a masked (query, key) pair. Adding any score to it leaves it unchanged in float32,
 * so a fully masked row softmaxes to uniform, as HF's masked_fill with finfo.min does. */
export const MASKED_SCORE = -1e30;

/**
 * Per-head slopes: with N = 2^ceil(log2 H), slope_i = 2^(-i·max/N) for i = 1..N; when N ≠ H the
 * odd-position slopes come first, then the even ones, cut to H (MPT's non-power-of-two rule).
 */
export function alibiSlopes(nHeads: number, alibiBiasMax: number): number[] {
  const n = 2 ** Math.ceil(Math.log2(nHeads));
  const all: number[] = [];
  for (let i = 1; i <= n; i++) all.push(1 / 2 ** (i * (alibiBiasMax / n)));
  if (n === nHeads) return all;
  const odd = all.filter((_, i) => i % 2 === 1);
  const even = all.filter((_, i) => i % 2 === 0);
  return [...odd, ...even].slice(0, nHeads);
}

/**
 * [H, T, T] bias for keys relative to the last key (MPT's form: key j gets -slope·(T-1-j), which
 * equals standard ALiBi up to a per-row constant), with MASKED_SCORE above the diagonal.
 * `slopes` null means no ALiBi (causal mask only).
 */
export function causalAlibiBias(
  slopes: readonly number[] | null,
  nHeads: number,
  seqLen: number,
): Float32Array {
  const t = seqLen;
  const out = new Float32Array(nHeads * t * t);
  for (let h = 0; h < nHeads; h++) {
    const slope = slopes === null ? 0 : (slopes[h] as number);
    // Same float32 values as torch: int positions times a float32 slope.
    const s = Math.fround(slope);
    for (let i = 0; i < t; i++) {
      const row = (h * t + i) * t;
      for (let j = 0; j < t; j++) out[row + j] = j <= i ? Math.fround(s * (j - (t - 1))) : MASKED_SCORE;
    }
  }
  return out;
}

/** [rows, T] key-padding bias: 0 where attention_mask is 1, MASKED_SCORE where it is 0; null when
 * no row has padding (the common case, which then needs no per-row bias at all). */
export function keyPaddingBias(mask: Int32Array | null, rows: number, seqLen: number): Float32Array | null {
  if (mask === null || mask.every((m) => m !== 0)) return null;
  const out = new Float32Array(rows * seqLen);
  for (let i = 0; i < rows * seqLen; i++) out[i] = mask[i] === 0 ? MASKED_SCORE : 0;
  return out;
}

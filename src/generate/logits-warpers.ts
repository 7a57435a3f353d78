// What sampling does to one row of next-token logits before drawing, in transformers' order and with
// its rules (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper): divide by the temperature;
// keep the top_k largest (ties with the k-th kept); sort ascending, drop the tokens whose cumulative
// probability is <= 1 - top_p, always keeping the largest. Dropped entries become -Infinity.
// Arithmetic is rounded to float32 where torch computes in float32.

export interface WarperSettings {
  /** > 0; 1 leaves the logits as they are. */
  readonly temperature: number;
  /** 0 = off. */
  readonly topK: number;
  /** In (0, 1]; 1 = off. */
  readonly topP: number;
}

/** A new row: the warped scores (-Infinity where a token can no longer be drawn). */
export function warpLogits(row: Float32Array, s: WarperSettings): Float32Array {
  const out = Float32Array.from(row);
  if (s.temperature !== 1) for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / s.temperature;
  if (s.topK > 0) applyTopK(out, Math.min(s.topK, out.length));
  if (s.topP < 1) applyTopP(out, s.topP);
  return out;
}

function applyTopK(scores: Float32Array, k: number): void {
  const sorted = Float32Array.from(scores).sort(); // ascending; NaN never occurs in logits
  const kth = sorted[sorted.length - k] as number;
  for (let i = 0; i < scores.length; i++) if ((scores[i] as number) < kth) scores[i] = -Infinity;
}

function applyTopP(scores: Float32Array, topP: number): void {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => (scores[a] as number) - (scores[b] as number) || a - b,
  );
  const max = scores[order[n - 1] as number] as number;
  let sum = 0;
  const exps = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const e = Math.exp((scores[order[j] as number] as number) - max);
    exps[j] = e;
    sum += e;
  }
  const threshold = Math.fround(1 - topP);
  let cumulative = 0;
  // The last (largest) token is always kept: min_tokens_to_keep = 1.
  for (let j = 0; j < n - 1; j++) {
    cumulative = Math.fround(cumulative + Math.fround((exps[j] as number) / sum));
    if (cumulative <= threshold) scores[order[j] as number] = -Infinity;
    else break; // cumulative only grows: every later token is kept
  }
}

/** Index of the largest entry (the first one on ties, as torch.argmax). */
export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if ((row[i] as number) > (row[best] as number)) best = i;
  return best;
}

// Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_ (max_norm 1.0 in the HF
// Trainer): scale by max_norm / (norm + 1e-6) when that is below 1. Deterministic: one float64 sum
// in index order.

export function globalNorm(grad: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < grad.length; i++) sum += grad[i]! * grad[i]!;
  return Math.sqrt(sum);
}

/** Clips in place; returns the norm before clipping (what the Trainer logs as grad_norm). */
export function clipByGlobalNorm(grad: Float32Array, maxNorm: number): number {
  const norm = globalNorm(grad);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (let i = 0; i < grad.length; i++) grad[i] = grad[i]! * coef;
  return norm;
}

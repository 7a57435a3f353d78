// AdamW on the host, in one deterministic loop over flat Float32Arrays (DESIGN.md §2): every replica
// that applies the same reduced gradient ends with bitwise-identical weights, whatever its backend.
// Same update rule as torch.optim.AdamW (decoupled weight decay, bias-corrected moments).

export interface AdamWHyper {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

/** The Hugging Face Trainer defaults that alpaca-lora trained with. */
export const HF_ADAMW: AdamWHyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

export interface AdamWState {
  readonly params: Float32Array;
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
  /** Number of updates applied so far. */
  step: number;
}

export function adamwState(params: Float32Array): AdamWState {
  return {
    params,
    expAvg: new Float32Array(params.length),
    expAvgSq: new Float32Array(params.length),
    step: 0,
  };
}

/** Applies one update in place with learning rate `lr`. */
export function adamwStep(state: AdamWState, grad: Float32Array, lr: number, h: AdamWHyper = HF_ADAMW): void {
  const { params, expAvg, expAvgSq } = state;
  if (grad.length !== params.length) {
    throw new Error(`gradient has ${grad.length} values, parameters ${params.length}`);
  }
  state.step += 1;
  const t = state.step;
  const bc1 = 1 - h.beta1 ** t;
  const bc2Sqrt = Math.sqrt(1 - h.beta2 ** t);
  const stepSize = lr / bc1;
  const decay = 1 - lr * h.weightDecay;
  const b1 = h.beta1;
  const b2 = h.beta2;
  for (let i = 0; i < params.length; i++) {
    const g = grad[i]!;
    const m = b1 * expAvg[i]! + (1 - b1) * g;
    const v = b2 * expAvgSq[i]! + (1 - b2) * g * g;
    expAvg[i] = m;
    expAvgSq[i] = v;
    params[i] = params[i]! * decay - (stepSize * expAvg[i]!) / (Math.sqrt(expAvgSq[i]!) / bc2Sqrt + h.eps);
  }
}

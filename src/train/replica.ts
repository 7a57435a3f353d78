// One replica of the adapter's training state (DESIGN.md §2): the LoRA master weights and AdamW
// moments as flat Float32Arrays plus the step count. Finetune, every worker and the coordinator
// hold one and run the same two calls per step, so they stay bitwise identical:
// `finalizeGradient` (sum -> mean over the step's supervised tokens -> clip) then `apply` (AdamW).
import { type AdamWHyper, type AdamWState, adamwState, adamwStep, HF_ADAMW } from './adamw.ts';
import { vectorChecksum } from './checksum.ts';
import { clipByGlobalNorm } from './clip.ts';
import type { ParamLayout } from './param-layout.ts';

/** Gradient clipping norm: the HF Trainer's max_grad_norm default, which finetune.py keeps. */
export const MAX_GRAD_NORM = 1.0;

export interface FinalGradient {
  readonly grad: Float32Array;
  /** Global norm before clipping. */
  readonly norm: number;
  /** Checksum of the clipped gradient's bytes; replicas compare it before committing. */
  readonly checksum: string;
}

/**
 * Turns the all-reduced SUM of token-loss gradients into the step's gradient, in place: divide by
 * the step's total supervised tokens (so the result equals one big batch however the work was
 * split), then clip by global norm.
 */
export function finalizeGradient(sum: Float32Array, totalTokens: number, maxGradNorm: number): FinalGradient {
  if (!(totalTokens > 0)) throw new Error(`a step needs supervised tokens; got ${totalTokens}`);
  const inv = 1 / totalTokens;
  for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! * inv;
  const norm = clipByGlobalNorm(sum, maxGradNorm);
  return { grad: sum, norm, checksum: vectorChecksum(sum) };
}

export class AdapterReplica {
  readonly state: AdamWState;

  constructor(
    readonly layout: ParamLayout,
    params: Float32Array,
    readonly hyper: AdamWHyper = HF_ADAMW,
  ) {
    if (params.length !== layout.size)
      throw new Error(`adapter has ${params.length} values, layout ${layout.size}`);
    this.state = adamwState(params);
  }

  /** Optimizer updates applied so far (the HF Trainer's global_step). */
  get step(): number {
    return this.state.step;
  }

  apply(grad: Float32Array, lr: number): void {
    adamwStep(this.state, grad, lr, this.hyper);
  }

  /** Digest of weights + moments + step: equal digests mean identical replicas. */
  checksum(): string {
    const s = this.state;
    return `${s.step}:${vectorChecksum(s.params)}:${vectorChecksum(s.expAvg)}:${vectorChecksum(s.expAvgSq)}`;
  }

  /** Overwrites this replica with another's state (repair after divergence, or a joining worker). */
  restore(from: { params: Float32Array; expAvg: Float32Array; expAvgSq: Float32Array; step: number }): void {
    for (const [k, v] of [
      ['params', from.params],
      ['expAvg', from.expAvg],
      ['expAvgSq', from.expAvgSq],
    ] as const) {
      if (v.length !== this.layout.size)
        throw new Error(`restore: ${k} has ${v.length} values, layout ${this.layout.size}`);
    }
    this.state.params.set(from.params);
    this.state.expAvg.set(from.expAvg);
    this.state.expAvgSq.set(from.expAvgSq);
    this.state.step = from.step;
  }
}

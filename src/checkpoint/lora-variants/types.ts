// What a LoRA variant is (PEFT's LoraVariant: plain LoRA, DoRA, the next one): the trainable tensors
// it adds to each target and their starting values, the forward and closed-form backward of an
// adapted Linear, the merged weight, its FLOPs and memory — one object per variant, chosen in index.ts.
// TensorFlow.js appears here and in every variant as types only (`import type`, erased when the
// TypeScript is compiled): the device math receives the `tf` namespace from src/model/linear.ts and
// src/model/mpt-model.ts, so the coordinator, which needs a variant's tensors and initialisation
// but never runs the model, reaches these files without loading TensorFlow.js (docs/architecture.md).
import type * as tf from '@tensorflow/tfjs-core';
import type { LoraSettings } from '../lora-spec.ts';
import type { LoraTarget } from '../lora-targets.ts';

/** The TensorFlow.js namespace, handed in by the model (a variant never imports it at run time). */
export type Tf = typeof tf;

/** In and out features of an adapted Linear (W is [out, in]). */
export type LinearDims = Pick<LoraTarget, 'inFeatures' | 'outFeatures'>;

/** A trainable tensor a variant gives each target beside A and B: its PEFT saved name and shape. */
export interface VariantTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/** One target's LoRA pair on the device for the current step, in both layouts (they are tiny). */
export interface LoraPair {
  /** A [r, in] and Aᵀ [in, r]. */
  readonly a: tf.Tensor2D;
  readonly at: tf.Tensor2D;
  /** B [out, r] and Bᵀ [r, out]. */
  readonly b: tf.Tensor2D;
  readonly bt: tf.Tensor2D;
  /** alpha / r (or alpha / sqrt(r) with rsLoRA). */
  readonly scale: number;
}

/** The frozen Linear as a variant's forward and backward use it (src/model/linear.ts makes it). */
export interface FrozenLinear {
  /** x·Wᵀ [N, out] (int8 weights: with their row scales). The caller owns it. */
  times(x: tf.Tensor2D): tf.Tensor2D;
  /** g·W [N, in]. The caller owns it. */
  timesTransposed(g: tf.Tensor2D): tf.Tensor2D;
  /** a·b with optional transposes, the fast way for the backend's layout (small operands only). */
  smallMatMul(a: tf.Tensor2D, b: tf.Tensor2D, transposeA: boolean, transposeB: boolean): tf.Tensor2D;
}

/** W's rows as float32 tensors, for a variant's per-step statistics of W (DoRA's row norms). */
export interface FrozenRows extends LinearDims {
  /** Runs fn with `rows(start, count)` = W[start .. start+count) [count, in] (int8: scaled), valid
   * inside fn only (int8 weights are converted for its span and freed after). */
  withRows<T>(fn: (rows: (start: number, count: number) => tf.Tensor2D) => T): T;
}

/** What the backward needs beyond the layer input. Freed by src/model/linear.ts (disposeLinearSaved). */
export interface LinearSaved {
  /** drop(x)·Aᵀ [N, r], unscaled (null without an adapter). */
  readonly u: tf.Tensor2D | null;
  /** drop(x) [N, in] when dropout is on (else the input itself is used). */
  readonly dropped: tf.Tensor2D | null;
  /** What the variant keeps beyond LoRA's (DoRA: z), read only by that variant's backward. */
  readonly extra: readonly tf.Tensor2D[];
}

export interface LinearGrads {
  /** dL/dA [r, in]. */
  readonly dA: tf.Tensor2D;
  /** dL/dBᵀ [r, out] (the host transposes it to PEFT's [out, r]). */
  readonly dBt: tf.Tensor2D;
  /** dL/d of each of the variant's extraTensors, in their order and with their number of values. */
  readonly extra: readonly tf.Tensor2D[];
}

/** One target's adapter for the current step on the device: the pair, the variant's state, its math. */
export interface AdaptedLinear {
  readonly pair: LoraPair;
  /**
   * y from the layer input x [N, in], the frozen output base = x·Wᵀ (which the result may reuse but
   * must not dispose) and `keep`, the dropout mask already scaled by 1/(1-p), or null. Runs inside
   * the caller's tidy scope; the caller owns y and saved.
   */
  forward(
    w: Pick<FrozenLinear, 'times'>,
    x: tf.Tensor2D,
    base: tf.Tensor2D,
    keep: tf.Tensor2D | null,
  ): { readonly y: tf.Tensor2D; readonly saved: LinearSaved };
  /**
   * From dy [N, out]: dx (only when needDx) and the gradients of A, B and the extra tensors. `input`
   * is drop(x) (x without dropout). Runs inside the caller's tidy scope; the caller owns the results.
   */
  backward(
    w: FrozenLinear,
    dy: tf.Tensor2D,
    input: tf.Tensor2D,
    saved: LinearSaved,
    keep: tf.Tensor2D | null,
    needDx: boolean,
  ): { readonly dx: tf.Tensor2D | null; readonly grads: LinearGrads };
  /** Frees the pair and the variant's device state. */
  dispose(): void;
}

/** One target's adapter on the host, for a merge. */
export interface HostAdapter {
  readonly target: LinearDims;
  /** A [r, in] and B [out, r], row-major. */
  readonly a: Float32Array;
  readonly b: Float32Array;
  readonly r: number;
  readonly scale: number;
  /** The variant's extra tensors, in extraTensors order. */
  readonly extras: readonly Float32Array[];
}

/** One target's A [r, in] and B [out, r] of a fresh run, and the scaling s. */
export interface StartingPair {
  readonly a: Float32Array;
  readonly b: Float32Array;
  readonly scale: number;
}

/** What the count of src/model/flops.ts adds for one target, per token, beyond plain LoRA's. */
export interface VariantFlops {
  readonly forward: number;
  /** Backward FLOPs that compute the input gradient (none where nothing below is trained). */
  readonly inputGradient: number;
}

export interface LoraVariant {
  /** Its name and the setting that switches it on, for errors: 'DoRA (use_dora)'. */
  readonly name: string;
  /** Whether the LoRA settings ask for this variant (DoRA: use_dora). */
  appliesTo(s: LoraSettings): boolean;
  /** Trainable tensors of one target beyond A and B (PEFT names and shapes), in the order saved. */
  extraTensors(t: LoraTarget): readonly VariantTensor[];
  /** Their starting values, one per extraTensors entry, from the target's frozen W [out, in] and the
   * run's starting A and B (`start`; init_lora_weights may make B non-zero). */
  initialValues(t: LoraTarget, w: Float32Array, start: StartingPair | null): readonly Float32Array[];
  /** The step's adapter on the device from A, B (`pair`, now owned by the result) and the extras. */
  prepare(tf: Tf, pair: LoraPair, extras: readonly Float32Array[], weight: FrozenRows): AdaptedLinear;
  /** W [out, in] with the adapter folded in, in place, float32 step by step as PEFT merges on the CPU. */
  mergeWeight(w: Float32Array, adapter: HostAdapter): void;
  /** Evaluation and generation load the adapter merged into W (true) or run it as a LoRA branch. */
  readonly mergedForInference: boolean;
  /** FLOPs per token of one target beyond plain LoRA's (`dropout`: lora_dropout > 0). */
  flopsPerToken(t: LinearDims, dropout: boolean): VariantFlops;
  /** float32 values per token the backward keeps for one target beyond plain LoRA's. */
  savedValuesPerToken(t: LinearDims): number;
  /** float32 values per token alive at once inside one Linear beyond plain LoRA's, for the widest. */
  workingValuesPerToken(widestOut: number): number;
  /** float32 values of one target's per-step device state beyond A, Aᵀ, B, Bᵀ. */
  deviceValues(t: LinearDims): number;
}

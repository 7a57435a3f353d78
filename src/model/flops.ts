// Model FLOPs of one micro-batch of a model + LoRA as this code computes it: the count behind MFU (the
// worker's lora_mpt_model_flops_total) and the train-step benchmark. Matmuls only (2 FLOPs per
// multiply-add); norms, softmax and element-wise work are left out, as in the usual MFU count.
//
// N = B·T tokens, L layers, D = d_model, P = Σ in·out of a block's frozen Linears (12·D² in MPT with
// the 4× FFN), n_l = positions whose logits are computed (the supervised ones), V = vocabulary:
//   fwd = 2·N·L·P  +  Σ_targets 2·N·r·(in+out)  +  4·B·T²·D·L  +  2·n_l·V·D
// The backward computes input gradients only (frozen weights get none) and stops where nothing below
// trains: it runs through the blocks above the lowest block with LoRA (l₀) whole, and in l₀ down to
// its lowest group with LoRA (g₀, the Linears reading one tensor: Architecture.inputGroups), whose
// Linears get no input gradient; the attention's backward runs in l₀ only when g₀ is the block's input
// group (below the attention). Each LoRA target costs twice its forward (dB, dy·B, dA, and the input
// gradient through A) but those of g₀ in l₀ skip the last, 2·N·r·in:
//   bwd = 2·N·((L−1−l₀)·P + Σ_{g>g₀} P_g)  +  2·(LoRA fwd) − Σ_{g₀ targets} 2·N·r·in
//         +  8·B·T²·D·((L−1−l₀) + [g₀ = 0])  +  2·n_l·V·D
// Checked for Llama against torch's FlopCounterMode (test/families/llama/flops.test.ts), which also
// skips the key gradient of l₀'s attention when k_proj has no LoRA there (this code computes it).
// The LoRA variant adds its own per target (src/checkpoint/lora-variants): DoRA with dropout multiplies
// each adapted Linear's dropped input by W once more (forward) and the magnitude's share of the
// gradient by W once more (backward, where the input gradient is computed): + Σ_targets 2·N·in·out
// each way. DoRA's weight norm (once per step, not per micro-batch) is left out.

import type { ModelConfig } from '../checkpoint/architecture.ts';
import type { LoraTarget } from '../checkpoint/lora-targets.ts';
import { LORA, type LoraVariant } from '../checkpoint/lora-variants/index.ts';
import type { VariantFlops } from '../checkpoint/lora-variants/types.ts';

/** What the count needs of a model and its adapter. */
export interface FlopsModel {
  readonly dModel: number;
  readonly nLayers: number;
  /** Σ in·out of one block's frozen Linears. */
  readonly blockLinearValues: number;
  /** The block's Linears by the tensor they read, bottom-up (Architecture.inputGroups), with Σ in·out. */
  readonly inputGroups: readonly { readonly linears: readonly string[]; readonly values: number }[];
  readonly vocabSize: number;
  readonly loraRank: number;
  /** In and out features of every LoRA-wrapped Linear, all layers. */
  readonly loraTargets: readonly Pick<LoraTarget, 'inFeatures' | 'outFeatures' | 'layer' | 'module'>[];
  /** What the LoRA variant adds per token to each of loraTargets, in its order (see above). Plain
   * data, as the whole model is: it crosses to the worker's compute thread by structured clone. */
  readonly variantFlops: readonly VariantFlops[];
}

export interface FlopsBatch {
  readonly rows: number;
  readonly seqLen: number;
  /** Positions whose logits are computed: the supervised tokens. */
  readonly logitRows: number;
}

export function flopsModelOf(
  config: ModelConfig,
  loraRank: number,
  targets: FlopsModel['loraTargets'],
  o: { readonly variant?: LoraVariant; readonly dropout?: boolean } = {},
): FlopsModel {
  const linears = config.arch.linears;
  const variant = o.variant ?? LORA;
  return {
    variantFlops: targets.map((t) => variant.flopsPerToken(t, o.dropout ?? false)),
    dModel: config.dModel,
    nLayers: config.nLayers,
    blockLinearValues: linears.reduce((a, l) => a + l.inFeatures * l.outFeatures, 0),
    inputGroups: config.arch.inputGroups.map((g) => ({
      linears: g,
      values: linears.filter((l) => g.includes(l.name)).reduce((a, l) => a + l.inFeatures * l.outFeatures, 0),
    })),
    vocabSize: config.vocabSize,
    loraRank,
    loraTargets: targets,
  };
}

/** The input group of `module`; throws naming it where the model's groups do not hold it. */
function groupOf(m: FlopsModel, module: string): number {
  const g = m.inputGroups.findIndex((x) => x.linears.includes(module));
  if (g < 0) throw new Error(`FLOPs: LoRA target ${module} is in no input group of the block`);
  return g;
}

function parts(m: FlopsModel, b: FlopsBatch) {
  const d = m.dModel;
  const n = b.rows * b.seqLen;
  const perBlock = m.blockLinearValues;
  const dense = 2 * n * m.nLayers * perBlock;
  const loraOf = (t: FlopsModel['loraTargets'][number]) =>
    2 * n * m.loraRank * (t.inFeatures + t.outFeatures);
  const lora = m.loraTargets.reduce((s, t) => s + loraOf(t), 0);
  const attentionPerLayer = 4 * b.rows * b.seqLen * b.seqLen * d;
  const attention = attentionPerLayer * m.nLayers;
  const logits = 2 * b.logitRows * m.vocabSize * d;
  if (m.variantFlops.length !== m.loraTargets.length) {
    throw new Error(
      `FLOPs: ${m.variantFlops.length} variant counts for ${m.loraTargets.length} LoRA targets`,
    );
  }
  // Where the backward stops: the lowest group with LoRA (g0) of the lowest block with LoRA (l0).
  const l0 = Math.min(...m.loraTargets.map((t) => t.layer));
  const g0 = Math.min(...m.loraTargets.filter((t) => t.layer === l0).map((t) => groupOf(m, t.module)));
  const whole = m.nLayers - 1 - l0;
  const above = m.inputGroups.slice(g0 + 1).reduce((a, g) => a + g.values, 0);
  const denseBackward = 2 * n * (whole * perBlock + above);
  const attentionBackward = 2 * attentionPerLayer * (whole + (g0 === 0 ? 1 : 0));
  let loraBackward = 0;
  let variantForward = 0;
  let variantBackward = 0;
  for (const [i, t] of m.loraTargets.entries()) {
    const f = m.variantFlops[i] as VariantFlops;
    variantForward += n * f.forward;
    // g0's targets in l0 compute no input gradient: neither through A nor the variant's share.
    const bottom = t.layer === l0 && groupOf(m, t.module) === g0;
    loraBackward += 2 * loraOf(t) - (bottom ? 2 * n * m.loraRank * t.inFeatures : 0);
    if (!bottom) variantBackward += n * f.inputGradient;
  }
  return {
    dense,
    lora,
    attention,
    logits,
    denseBackward,
    loraBackward,
    attentionBackward,
    variantForward,
    variantBackward,
  };
}

/** Forward FLOPs of one micro-batch (an evaluation micro-batch costs this). */
export function forwardFlops(m: FlopsModel, b: FlopsBatch): number {
  const p = parts(m, b);
  return p.dense + p.lora + p.attention + p.logits + p.variantForward;
}

/** Forward + backward FLOPs of one training micro-batch. */
export function trainStepFlops(m: FlopsModel, b: FlopsBatch): number {
  const p = parts(m, b);
  const backward = p.denseBackward + p.loraBackward + p.attentionBackward + p.logits + p.variantBackward;
  return forwardFlops(m, b) + backward;
}

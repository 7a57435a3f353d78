// Model FLOPs of one micro-batch of a model + LoRA as this code computes it: the count behind MFU (the
// worker's lora_mpt_model_flops_total) and the train-step benchmark. Matmuls only (2 FLOPs per
// multiply-add); norms, softmax and element-wise work are left out, as in the usual MFU count.
//
// N = B·T tokens, L layers, D = d_model, P = Σ in·out of a block's frozen Linears (12·D² in MPT with
// the 4× FFN), P₀ = Σ in·out of the Linears reading the block's input (MPT's Wqkv: 3·D²; Llama's
// q_proj, k_proj and v_proj, not q_proj alone, which overcounted k/v at layer 0), n_l = positions whose
// logits are computed (the supervised ones), V = vocabulary:
//   fwd = 2·N·L·P  +  Σ_targets 2·N·r·(in+out)  +  4·B·T²·D·L  +  2·n_l·V·D
//   bwd = 2·N·(L·P − P₀)  +  2·(LoRA fwd)  +  2·(attention fwd)  +  2·n_l·V·D
// The backward computes input gradients only (frozen weights get none), and not those of the first
// block's input Linears (nothing below them is trained): hence L·P − P₀. Checked for Llama against
// torch's FlopCounterMode (test/families/llama/flops.test.ts), which also skips two things this code
// computes or counts: LoRA A's input gradient of those first-block targets, and the key gradient of
// the first block's attention when k_proj has no LoRA. Targets that all sit above the first block's
// input Linears (e.g. only down_proj) are overcounted: the count assumes the backward reaches them.
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
  /** Σ in·out of one block's frozen Linears, and the names of those Linears in forward order. */
  readonly blockLinearValues: number;
  /** Σ in·out of the Linears reading a block's input (no input gradient in the first block). */
  readonly lowestLinearValues: number;
  readonly linearOrder: readonly string[];
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
    lowestLinearValues: linears
      .filter((l) => config.arch.blockInputLinears.includes(l.name))
      .reduce((a, l) => a + l.inFeatures * l.outFeatures, 0),
    linearOrder: linears.map((l) => l.name),
    vocabSize: config.vocabSize,
    loraRank,
    loraTargets: targets,
  };
}

function parts(m: FlopsModel, b: FlopsBatch) {
  const d = m.dModel;
  const n = b.rows * b.seqLen;
  const perBlock = m.blockLinearValues;
  const dense = 2 * n * m.nLayers * perBlock;
  const lora = m.loraTargets.reduce((s, t) => s + 2 * n * m.loraRank * (t.inFeatures + t.outFeatures), 0);
  const attention = 4 * b.rows * b.seqLen * b.seqLen * d * m.nLayers;
  const logits = 2 * b.logitRows * m.vocabSize * d;
  const denseBackward = 2 * n * (m.nLayers * perBlock - m.lowestLinearValues);
  // The lowest adapted Linear of all gets no input gradient (nothing below it trains).
  const order = (t: FlopsModel['loraTargets'][number]) =>
    t.layer * m.linearOrder.length + m.linearOrder.indexOf(t.module);
  const lowest = Math.min(...m.loraTargets.map(order));
  if (m.variantFlops.length !== m.loraTargets.length) {
    throw new Error(
      `FLOPs: ${m.variantFlops.length} variant counts for ${m.loraTargets.length} LoRA targets`,
    );
  }
  let variantForward = 0;
  let variantBackward = 0;
  for (const [i, t] of m.loraTargets.entries()) {
    const f = m.variantFlops[i] as VariantFlops;
    variantForward += n * f.forward;
    if (order(t) !== lowest) variantBackward += n * f.inputGradient;
  }
  return { dense, lora, attention, logits, denseBackward, variantForward, variantBackward };
}

/** Forward FLOPs of one micro-batch (an evaluation micro-batch costs this). */
export function forwardFlops(m: FlopsModel, b: FlopsBatch): number {
  const p = parts(m, b);
  return p.dense + p.lora + p.attention + p.logits + p.variantForward;
}

/** Forward + backward FLOPs of one training micro-batch. */
export function trainStepFlops(m: FlopsModel, b: FlopsBatch): number {
  const p = parts(m, b);
  const backward = p.denseBackward + 2 * p.lora + 2 * p.attention + p.logits + p.variantBackward;
  return forwardFlops(m, b) + backward;
}

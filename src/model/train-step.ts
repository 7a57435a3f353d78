// Forward + backward of one micro-batch: the SUM of token losses, the supervised-token count and the
// gradient of that sum for every LoRA tensor, on the host under PEFT saved names. The trainer adds
// these over micro-batches and divides by the global batch's token count (DESIGN §2).
//
// Gradient checkpointing keeps only each block's input during the forward and recomputes the block
// (same dropout masks, derived from DropoutSeed) right before its backward.
import * as tf from '@tensorflow/tfjs-core';
import { LORA, type LoraVariant, loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import type { BlockKeep, CausalLm, ModuleGrads, Releasable } from './causal-lm.ts';
import { type DropoutSeed, dropoutMask } from './dropout.ts';
import { transposeHost } from './host-transpose.ts';
import { fusedCrossEntropy } from './loss.ts';
import { shiftedTargets, type TokenBatch, validateTokenBatch } from './token-batch.ts';

export interface TrainStepOptions {
  /** Recompute each block in the backward instead of keeping its activations. */
  readonly gradientCheckpointing?: boolean;
  /** Required when lora_dropout > 0: makes the masks a function of (seed, micro-batch id). */
  readonly dropout?: DropoutSeed;
}

export interface TrainStepResult {
  /** Σ of the token cross-entropies over the supervised positions. */
  readonly lossSum: number;
  readonly supervisedTokens: number;
  /** d lossSum / d tensor, keyed by PEFT saved name, in PEFT shapes (A [r, in], B [out, r], the
   * LoRA variant's own tensors, e.g. DoRA's magnitude [out]). */
  readonly grads: Map<string, Float32Array>;
}

/** The scaled dropout masks of one block's LoRA inputs for this micro-batch (the caller disposes). */
function keepMasks(
  model: CausalLm,
  layer: number,
  rowsTotal: number,
  seed: DropoutSeed | undefined,
): BlockKeep {
  const p = model.lora?.loraDropout ?? 0;
  if (p === 0 || !model.hasLoraWeights) return {};
  if (seed === undefined)
    throw new Error('lora_dropout > 0 needs TrainStepOptions.dropout (seed and micro-batch id)');
  const linears = model.config.arch.linears;
  const out: Record<string, tf.Tensor2D> = {};
  for (const t of model.loraTargets) {
    if (t.layer !== layer) continue;
    const site = { layer, index: linears.findIndex((l) => l.name === t.module), perBlock: linears.length };
    const mask = dropoutMask(seed, site, p, rowsTotal * t.inFeatures);
    out[t.module] = tf.tensor2d(mask, [rowsTotal, t.inFeatures]);
  }
  return out;
}

function disposeKeep(k: BlockKeep): void {
  for (const t of Object.values(k)) t?.dispose();
}

/** Runs forward and backward of one micro-batch with the model's current LoRA weights. */
export async function computeLoraGradients(
  model: CausalLm,
  batch: TokenBatch,
  options: TrainStepOptions = {},
): Promise<TrainStepResult> {
  const c = model.config;
  if (model.lora === null)
    throw new Error('computeLoraGradients: the model has no LoRA adapter (configureLora)');
  if (batch.labels == null) throw new Error('computeLoraGradients: the micro-batch has no labels');
  validateTokenBatch(batch, c.vocabSize, c.maxSeqLen);
  model.assertTrainable();
  const ckpt = options.gradientCheckpointing ?? false;
  const targets = shiftedTargets(batch);
  if (targets.rows.length === 0) {
    // Nothing supervised (e.g. every label -100 after truncation): the sum is 0 and so is its gradient.
    return { lossSum: 0, supervisedTokens: 0, grads: zeroGradsOf(model, new Map()) };
  }
  const n = batch.rows * batch.seqLen;
  const pass = model.beginForward(
    { rows: batch.rows, seqLen: batch.seqLen, attentionMask: batch.attentionMask ?? null },
    null,
  );
  const lowestLayer = Math.min(...model.loraTargets.map((t) => t.layer));
  const collected: { layer: number; g: ModuleGrads }[] = [];
  const blockInputs: tf.Tensor2D[] = [];
  const saved: (Releasable | null)[] = [];
  const keeps: BlockKeep[] = [];
  let lossSumT: tf.Scalar | null = null;
  let finalSaved: Releasable | null = null;
  try {
    let x = model.embed(batch.inputIds, batch.seqLen, 0);
    for (let l = 0; l < c.nLayers; l++) {
      const keep = keepMasks(model, l, n, options.dropout);
      const out = model.blockForward(pass, l, keep, x, !ckpt && l >= lowestLayer);
      if (ckpt && l >= lowestLayer) blockInputs[l] = x;
      else x.dispose();
      saved[l] = out.saved;
      if (ckpt) disposeKeep(keep);
      else keeps[l] = keep;
      x = out.y;
    }
    const final = model.finalNorm(x, true);
    x.dispose();
    finalSaved = final.saved;
    const ce = fusedCrossEntropy(
      model.layout,
      final.y,
      targets,
      model.vocab,
      (labels) => model.labelRows(labels),
      c.logitScale ?? 1,
      true,
    );
    final.y.dispose();
    lossSumT = ce.lossSum;
    if (finalSaved === null) throw new Error('the final norm kept nothing for the backward');
    let dx: tf.Tensor2D | null = model.finalNormBackward(ce.dh as tf.Tensor2D, finalSaved);
    (ce.dh as tf.Tensor2D).dispose();
    finalSaved.dispose();
    finalSaved = null;
    for (let l = c.nLayers - 1; l >= lowestLayer && dx !== null; l--) {
      let keep = keeps[l] ?? {};
      let s = saved[l] ?? null;
      if (ckpt) {
        keep = keepMasks(model, l, n, options.dropout);
        const again = model.blockForward(pass, l, keep, blockInputs[l]!, true);
        again.y.dispose();
        blockInputs[l]!.dispose();
        s = again.saved;
      }
      if (s === null) throw new Error(`block ${l}: no saved forward state`);
      const back = model.blockBackward(pass, l, keep, dx, s, l > lowestLayer);
      for (const g of back.grads) collected.push({ layer: l, g });
      dx.dispose();
      dx = back.dx;
      s.dispose();
      saved[l] = null;
      disposeKeep(keep);
      keeps[l] = {};
    }
    dx?.dispose();
    return await readResults(model, lossSumT, targets.rows.length, collected);
  } finally {
    // On success everything below is already freed; after an error this releases what is left.
    lossSumT?.dispose();
    finalSaved?.dispose();
    for (const s of saved) if (s != null) s.dispose();
    for (const k of keeps) if (k !== undefined) disposeKeep(k);
    for (const t of blockInputs) if (t !== undefined && !t.isDisposed) t.dispose();
    for (const { g } of collected) tf.dispose([g.dA, g.dBt, ...g.extra]);
    pass.dispose();
  }
}

async function readResults(
  model: CausalLm,
  lossSum: tf.Scalar,
  supervisedTokens: number,
  collected: readonly { layer: number; g: ModuleGrads }[],
): Promise<TrainStepResult> {
  const r = model.lora?.r ?? 0;
  const variant = variantOf(model);
  const grads = new Map<string, Float32Array>();
  for (const { layer, g } of collected) {
    const t = model.loraTargets.find((x) => x.layer === layer && x.module === g.module);
    if (t === undefined) throw new Error(`gradient for ${g.module} of block ${layer} has no LoRA target`);
    const [dA, dBt] = (await Promise.all([g.dA.data(), g.dBt.data()])) as [Float32Array, Float32Array];
    grads.set(t.aName, Float32Array.from(dA));
    grads.set(t.bName, transposeHost(dBt, r, t.outFeatures));
    for (const [i, spec] of variant.extraTensors(t).entries()) {
      grads.set(spec.name, Float32Array.from((await (g.extra[i] as tf.Tensor2D).data()) as Float32Array));
    }
  }
  const lossSumValue = (await lossSum.data())[0] as number;
  return { lossSum: lossSumValue, supervisedTokens, grads: zeroGradsOf(model, grads) };
}

/** `grads` completed with zeros for every trainable tensor it lacks (targets in blocks the gradient
 * never reached: none below the lowest LoRA block). */
function zeroGradsOf(model: CausalLm, grads: Map<string, Float32Array>): Map<string, Float32Array> {
  const r = model.lora?.r ?? 0;
  const variant = variantOf(model);
  for (const t of model.loraTargets) {
    if (!grads.has(t.aName)) grads.set(t.aName, new Float32Array(r * t.inFeatures));
    if (!grads.has(t.bName)) grads.set(t.bName, new Float32Array(t.outFeatures * r));
    for (const spec of variant.extraTensors(t)) {
      if (!grads.has(spec.name))
        grads.set(spec.name, new Float32Array(spec.shape.reduce((n, x) => n * x, 1)));
    }
  }
  return grads;
}

function variantOf(model: CausalLm): LoraVariant {
  return model.lora === null ? LORA : loraVariantOf(model.lora);
}

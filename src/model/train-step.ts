// Forward + backward of one micro-batch: the SUM of token losses, the supervised-token count and the
// gradient of that sum for every LoRA tensor, on the host under PEFT saved names. The trainer adds
// these over micro-batches and divides by the global batch's token count (DESIGN §2).
//
// Gradient checkpointing keeps only each block's input during the forward and recomputes the block
// (same dropout masks, derived from DropoutSeed) right before its backward.
import * as tf from '@tensorflow/tfjs-core';
import type { MPT_LINEARS } from '../checkpoint/lora-targets.ts';
import { LORA, type LoraVariant, loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import { AttentionMask } from './attention-mask.ts';
import {
  type BlockEnv,
  type BlockKeep,
  type BlockSaved,
  blockBackward,
  blockForward,
  disposeBlockSaved,
  type ModuleGrads,
} from './block.ts';
import { type DropoutSeed, dropoutMask } from './dropout.ts';
import { transposeHost } from './host-transpose.ts';
import { layerNormBackward, layerNormForward } from './layer-norm.ts';
import { fusedCrossEntropy } from './loss.ts';
import type { MptModel } from './mpt-model.ts';
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

export function blockEnv(model: MptModel, batch: TokenBatch, mask: AttentionMask): BlockEnv {
  const c = model.config;
  return {
    layout: model.layout,
    attn: {
      rows: batch.rows,
      seqLen: batch.seqLen,
      nHeads: c.nHeads,
      headDim: model.headDim,
      scale: model.softmaxScale,
    },
    mask,
    eps: c.normEps,
    clipQkv: c.attn.clipQkv,
  };
}

/** The scaled dropout masks of one block's LoRA inputs for this micro-batch (the caller disposes). */
function keepMasks(
  model: MptModel,
  layer: number,
  rowsTotal: number,
  seed: DropoutSeed | undefined,
): BlockKeep {
  const p = model.lora?.loraDropout ?? 0;
  if (p === 0) return {};
  if (seed === undefined)
    throw new Error('lora_dropout > 0 needs TrainStepOptions.dropout (seed and micro-batch id)');
  const lora = model.blockLora(layer);
  const out: Partial<Record<(typeof MPT_LINEARS)[number], tf.Tensor2D>> = {};
  for (const t of model.loraTargets) {
    if (t.layer !== layer || lora[t.module] === undefined) continue;
    const mask = dropoutMask(seed, layer, t.module, p, rowsTotal * t.inFeatures);
    out[t.module] = tf.tensor2d(mask, [rowsTotal, t.inFeatures]);
  }
  return out;
}

function disposeKeep(k: BlockKeep): void {
  for (const t of Object.values(k)) t?.dispose();
}

/** Runs forward and backward of one micro-batch with the model's current LoRA weights. */
export async function computeLoraGradients(
  model: MptModel,
  batch: TokenBatch,
  options: TrainStepOptions = {},
): Promise<TrainStepResult> {
  const c = model.config;
  if (model.lora === null)
    throw new Error('computeLoraGradients: the model has no LoRA adapter (configureLora)');
  if (batch.labels == null) throw new Error('computeLoraGradients: the micro-batch has no labels');
  validateTokenBatch(batch, c.vocabSize, c.maxSeqLen);
  const pdrop = { attn_pdrop: c.attn.attnPdrop, resid_pdrop: c.residPdrop, emb_pdrop: c.embPdrop };
  for (const [field, p] of Object.entries(pdrop)) {
    // Base-model dropout would change the training loss; MPT checkpoints ship 0 for all three.
    if (p > 0)
      throw new Error(`config ${field} = ${p}: dropout in the frozen model is not supported (set it to 0)`);
  }
  const ckpt = options.gradientCheckpointing ?? false;
  const targets = shiftedTargets(batch);
  if (targets.rows.length === 0) {
    // Nothing supervised (e.g. every label -100 after truncation): the sum is 0 and so is its gradient.
    return { lossSum: 0, supervisedTokens: 0, grads: zeroGradsOf(model, new Map()) };
  }
  const n = batch.rows * batch.seqLen;
  const mask = new AttentionMask(model.biasCache, batch.rows, batch.seqLen, batch.attentionMask ?? null);
  const env = blockEnv(model, batch, mask);
  const lowestLayer = Math.min(...model.loraTargets.map((t) => t.layer));
  const collected: { layer: number; g: ModuleGrads }[] = [];
  const blockInputs: tf.Tensor2D[] = [];
  const saved: (BlockSaved | null)[] = [];
  const keeps: BlockKeep[] = [];
  let lossSumT: tf.Scalar | null = null;
  try {
    let x = model.embed(batch.inputIds, batch.seqLen);
    for (let l = 0; l < c.nLayers; l++) {
      const keep = keepMasks(model, l, n, options.dropout);
      const out = blockForward(env, model.blocks[l]!, model.blockLora(l), keep, x, !ckpt && l >= lowestLayer);
      if (ckpt && l >= lowestLayer) blockInputs[l] = x;
      else x.dispose();
      saved[l] = out.saved;
      if (ckpt) disposeKeep(keep);
      else keeps[l] = keep;
      x = out.y;
    }
    const final = layerNormForward(x, model.normF, c.normEps);
    x.dispose();
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
    let dx: tf.Tensor2D | null = layerNormBackward(ce.dh as tf.Tensor2D, model.normF, final.saved);
    tf.dispose([ce.dh as tf.Tensor2D, final.saved.xhat, final.saved.rstd]);
    for (let l = c.nLayers - 1; l >= lowestLayer && dx !== null; l--) {
      let keep = keeps[l] ?? {};
      let s = saved[l] ?? null;
      if (ckpt) {
        keep = keepMasks(model, l, n, options.dropout);
        const again = blockForward(env, model.blocks[l]!, model.blockLora(l), keep, blockInputs[l]!, true);
        again.y.dispose();
        blockInputs[l]!.dispose();
        s = again.saved;
      }
      if (s === null) throw new Error(`block ${l}: no saved forward state`);
      const back = blockBackward(env, model.blocks[l]!, model.blockLora(l), keep, dx, s, l > lowestLayer);
      for (const g of back.grads) collected.push({ layer: l, g });
      dx.dispose();
      dx = back.dx;
      disposeBlockSaved(s);
      saved[l] = null;
      disposeKeep(keep);
      keeps[l] = {};
    }
    dx?.dispose();
    return await readResults(model, lossSumT, targets.rows.length, collected);
  } finally {
    // On success everything below is already freed; after an error this releases what is left.
    lossSumT?.dispose();
    for (const s of saved) if (s != null) disposeBlockSaved(s);
    for (const k of keeps) if (k !== undefined) disposeKeep(k);
    for (const t of blockInputs) if (t !== undefined && !t.isDisposed) t.dispose();
    for (const { g } of collected) tf.dispose([g.dA, g.dBt, ...g.extra]);
    mask.dispose();
  }
}

async function readResults(
  model: MptModel,
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
function zeroGradsOf(model: MptModel, grads: Map<string, Float32Array>): Map<string, Float32Array> {
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

function variantOf(model: MptModel): LoraVariant {
  return model.lora === null ? LORA : loraVariantOf(model.lora);
}

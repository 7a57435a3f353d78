// Forward-only uses of the model (evaluation, generation, parity tests): the final hidden states,
// full logits, and the loss sum over supervised positions without any gradient. LoRA is applied
// when the model has weights set; dropout never is (eval mode).
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLm } from './causal-lm.ts';
import { fusedCrossEntropy } from './loss.ts';
import { shiftedTargets, type TokenBatch, validateTokenBatch } from './token-batch.ts';

/** norm_f(blocks(wte[ids])) as [rows·T, D]. The caller owns the result. */
export function forwardHidden(model: CausalLm, batch: TokenBatch): tf.Tensor2D {
  validateTokenBatch(batch, model.config.vocabSize, model.config.maxSeqLen);
  const rows = { rows: batch.rows, seqLen: batch.seqLen, attentionMask: batch.attentionMask ?? null };
  const pass = model.beginForward(rows, null);
  try {
    let x = model.embed(batch.inputIds, batch.seqLen, 0);
    for (let l = 0; l < model.config.nLayers; l++) {
      const { y } = model.blockForward(pass, l, {}, x, false);
      x.dispose();
      x = y;
    }
    const { y: h } = model.finalNorm(x, false);
    x.dispose();
    return h;
  } finally {
    pass.dispose();
  }
}

/** h [n, D] → logits [n, V] through the tied output layer (times logit_scale). Caller owns it. */
export function outputLogits(model: CausalLm, h: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy((): tf.Tensor2D => {
    const parts = model.vocab.w.map((w, c) => {
      const wt = model.vocab.wt?.[c];
      return wt !== undefined ? tf.matMul(h, wt) : tf.matMul(h, w, false, true);
    });
    const all = parts.length === 1 ? (parts[0] as tf.Tensor2D) : (tf.concat(parts, 1) as tf.Tensor2D);
    const scale = model.config.logitScale ?? 1;
    return scale === 1 ? all : (tf.mul(all, scale) as tf.Tensor2D);
  });
}

/** Logits [rows, T, V] (times logit_scale when the config sets it). The caller owns the result. */
export function forwardLogits(model: CausalLm, batch: TokenBatch): tf.Tensor3D {
  const h = forwardHidden(model, batch);
  const logits = outputLogits(model, h);
  h.dispose();
  const out = tf.reshape(logits, [batch.rows, batch.seqLen, model.config.vocabSize]) as tf.Tensor3D;
  logits.dispose();
  return out;
}

/**
 * Logits [n, V] at chosen flat positions (row·T + t) only, e.g. each row's last real token when
 * generating: the vocab GEMM runs for those n rows, not for all rows·T. The caller owns the result.
 */
export function forwardLogitsAt(model: CausalLm, batch: TokenBatch, positions: Int32Array): tf.Tensor2D {
  const n = batch.rows * batch.seqLen;
  for (const p of positions) {
    if (!(p >= 0 && p < n)) throw new Error(`forwardLogitsAt: position ${p} is outside [0, ${n})`);
  }
  const h = forwardHidden(model, batch);
  const picked = tf.tidy(() => tf.gather(h, tf.tensor1d(positions, 'int32')) as tf.Tensor2D);
  h.dispose();
  const logits = outputLogits(model, picked);
  picked.dispose();
  return logits;
}

/** Σ token losses over labels != -100 after the shift, and their count; no gradient is formed. */
export async function evaluateLoss(
  model: CausalLm,
  batch: TokenBatch,
): Promise<{ readonly lossSum: number; readonly supervisedTokens: number }> {
  const targets = shiftedTargets(batch);
  const h = forwardHidden(model, batch);
  const { lossSum } = fusedCrossEntropy(
    model.layout,
    h,
    targets,
    model.vocab,
    (labels) => model.labelRows(labels),
    model.config.logitScale ?? 1,
    false,
  );
  h.dispose();
  const value = (await lossSum.data())[0] as number;
  lossSum.dispose();
  return { lossSum: value, supervisedTokens: targets.rows.length };
}

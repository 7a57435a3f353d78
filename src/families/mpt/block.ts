// One pre-norm MPT block, forward and closed-form backward:
//   x1 = x + out_proj(attn(norm_1(x))),  y = x1 + down_proj(gelu(up_proj(norm_2(x1)))).
// The backward returns dx and the LoRA gradients of this block only; it stops as soon as nothing
// below needs a gradient (layer 0 never computes dx). With a KV cache (generation) the forward
// appends the new positions' K and V and, after the prompt, attends to every cached key; the prompt
// (empty cache) runs the training attention path, so its numbers equal the uncached forward.
import * as tf from '@tensorflow/tfjs-core';
import {
  type AttentionSaved,
  type AttentionShape,
  attentionBackward,
  attentionForward,
  disposeAttentionSaved,
} from '../../model/attention.ts';
import type { AttentionMask } from '../../model/attention-mask.ts';
import type { ComputeLayout } from '../../model/backend.ts';
import { cachedAttention, splitHeadsOf } from '../../model/cached-attention.ts';
import type { BlockKeep, ModuleGrads } from '../../model/causal-lm.ts';
import { gelu, geluBackward } from '../../model/gelu.ts';
import type { KvCache } from '../../model/kv-cache.ts';
import { type LayerNormSaved, layerNormBackward, layerNormForward } from '../../model/layer-norm.ts';
import { disposeLinearSaved, type LinearSaved, linearBackward, linearForward } from '../../model/linear.ts';
import type { DenseWeights, LinearWeightSource } from '../../model/linear-weights.ts';
import type { BlockLora } from '../../model/lora-state.ts';
import { MPT_LINEARS, type MptLinearName } from './architecture.ts';

export interface BlockWeights {
  readonly norm1: tf.Tensor1D;
  readonly norm2: tf.Tensor1D;
  /** llm-foundry qk_ln LayerNorms over Q and K (null unless the config sets qk_ln). */
  readonly qLn: tf.Tensor1D | null;
  readonly kLn: tf.Tensor1D | null;
  readonly linears: Readonly<Record<MptLinearName, LinearWeightSource>>;
}

/** Generation's KV cache as one block uses it. */
export interface BlockCache {
  readonly kv: KvCache;
  readonly layer: number;
  /** [1, H, q, Tk] bias of the new positions against every cached key (cachedAttentionBias); null
   * for the prompt (empty cache), which attends through `mask` as training does. */
  readonly bias: tf.Tensor4D | null;
}

export interface BlockEnv {
  readonly layout: ComputeLayout;
  readonly attn: AttentionShape;
  /** Null only after the prompt of a cached forward (the cache's bias replaces it). */
  readonly mask: AttentionMask | null;
  readonly eps: number;
  readonly clipQkv: number | null;
}

/** Forward state the backward needs; freed by disposeBlockSaved. */
export interface BlockSaved {
  readonly ln1: LayerNormSaved;
  readonly ln2: LayerNormSaved;
  /** Inputs of the four linears (kept only where that linear has LoRA). */
  readonly inputs: Partial<Record<MptLinearName, tf.Tensor2D>>;
  readonly lin: Partial<Record<MptLinearName, LinearSaved>>;
  readonly clipMask: tf.Tensor2D | null;
  readonly qLn: LayerNormSaved | null;
  readonly kLn: LayerNormSaved | null;
  readonly attn: AttentionSaved;
  /** up_proj output (GELU input). */
  readonly preAct: tf.Tensor2D;
}

function acquireAll(w: BlockWeights): Record<MptLinearName, DenseWeights> {
  return {
    Wqkv: w.linears.Wqkv.acquire(),
    out_proj: w.linears.out_proj.acquire(),
    up_proj: w.linears.up_proj.acquire(),
    down_proj: w.linears.down_proj.acquire(),
  };
}

function releaseAll(w: BlockWeights, d: Record<MptLinearName, DenseWeights>): void {
  for (const m of MPT_LINEARS) w.linears[m].release(d[m]);
}

export function disposeBlockSaved(s: BlockSaved): void {
  tf.dispose([s.ln1.xhat, s.ln1.rstd, s.ln2.xhat, s.ln2.rstd, s.preAct]);
  for (const t of Object.values(s.inputs)) t.dispose();
  for (const l of Object.values(s.lin)) disposeLinearSaved(l);
  s.clipMask?.dispose();
  if (s.qLn !== null) tf.dispose([s.qLn.xhat, s.qLn.rstd]);
  if (s.kLn !== null) tf.dispose([s.kLn.xhat, s.kLn.rstd]);
  disposeAttentionSaved(s.attn);
}

/** The mask of an uncached forward or a cached prompt; throws where only a cache bias exists. */
function maskOf(env: BlockEnv): AttentionMask {
  if (env.mask === null) throw new Error('MPT block: no attention mask for this forward');
  return env.mask;
}

/** ctx of the new positions with the KV cache: appends their K and V to layer `c.layer`, then attends
 * as training does (the prompt) or against every cached key. The caller owns ctx. */
function cachedContext(env: BlockEnv, c: BlockCache, qkv: tf.Tensor2D): tf.Tensor2D {
  const { rows, seqLen: q, nHeads: h, headDim: hd, scale } = env.attn;
  const [qPart, kPart, vPart] = tf.split(qkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  try {
    c.kv.append(
      c.layer,
      tf.keep(splitHeadsOf(kPart, rows, q, h, hd)),
      tf.keep(splitHeadsOf(vPart, rows, q, h, hd)),
    );
    if (c.bias === null) return attentionForward(env.layout, qkv, env.attn, maskOf(env), false).ctx;
    const kv = c.kv.layer(c.layer);
    if (kv === null) throw new Error(`MPT block: layer ${c.layer} has no cached keys`);
    return cachedAttention(qPart, kv.k, kv.v, { rows, q, nHeads: h, headDim: hd, scale }, c.bias);
  } finally {
    tf.dispose([qPart, kPart, vPart]);
  }
}

/** y = block(x), appending to `cache` when given (never saved then). The caller owns y and saved
 * (null unless `save`); x is not disposed. */
export function blockForward(
  env: BlockEnv,
  w: BlockWeights,
  lora: BlockLora,
  keep: BlockKeep,
  x: tf.Tensor2D,
  save: boolean,
  cache: BlockCache | null = null,
): { readonly y: tf.Tensor2D; readonly saved: BlockSaved | null } {
  if (save && cache !== null) throw new Error('MPT block: a cached forward keeps nothing for a backward');
  const dense = acquireAll(w);
  const inputs: Partial<Record<MptLinearName, tf.Tensor2D>> = {};
  const lin: Partial<Record<MptLinearName, LinearSaved>> = {};
  const temps: tf.Tensor[] = [];
  // Runs one linear; keeps its input and state for the backward only where it has LoRA.
  const linear = (m: MptLinearName, input: tf.Tensor2D): tf.Tensor2D => {
    const f = lora[m] ?? null;
    const out = linearForward(dense[m], input, f, keep[m] ?? null);
    if (save && f !== null) {
      inputs[m] = input;
      lin[m] = out.saved;
    } else {
      temps.push(input);
      disposeLinearSaved(out.saved);
    }
    return out.y;
  };

  const ln1 = layerNormForward(x, w.norm1, env.eps);
  let qkv = linear('Wqkv', ln1.y);
  let clipMask: tf.Tensor2D | null = null;
  if (env.clipQkv !== null) {
    const c = env.clipQkv;
    const raw = qkv;
    qkv = tf.clipByValue(raw, -c, c);
    // torch.clamp passes the gradient where -c <= x <= c (bounds included).
    if (save) clipMask = tf.tidy(() => tf.cast(tf.lessEqual(tf.abs(raw), c), 'float32') as tf.Tensor2D);
    raw.dispose();
  }
  let qLn: LayerNormSaved | null = null;
  let kLn: LayerNormSaved | null = null;
  if (w.qLn !== null && w.kLn !== null) {
    const [q, k, v] = tf.split(qkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const qf = layerNormForward(q, w.qLn, env.eps);
    const kf = layerNormForward(k, w.kLn, env.eps);
    qLn = qf.saved;
    kLn = kf.saved;
    qkv.dispose();
    qkv = tf.concat([qf.y, kf.y, v], 1);
    tf.dispose([q, k, v, qf.y, kf.y]);
  }
  const att =
    cache === null
      ? attentionForward(env.layout, qkv, env.attn, maskOf(env), save)
      : { ctx: cachedContext(env, cache, qkv), saved: null };
  qkv.dispose();
  const o = linear('out_proj', att.ctx);
  const x1 = tf.add(x, o) as tf.Tensor2D;
  o.dispose();
  const ln2 = layerNormForward(x1, w.norm2, env.eps);
  const preAct = linear('up_proj', ln2.y);
  const d = linear('down_proj', gelu(preAct) as tf.Tensor2D);
  const y = tf.add(x1, d) as tf.Tensor2D;
  tf.dispose([x1, d, ...temps]);
  releaseAll(w, dense);
  if (!save || att.saved === null) {
    tf.dispose([ln1.saved.xhat, ln1.saved.rstd, ln2.saved.xhat, ln2.saved.rstd, preAct]);
    if (qLn !== null) tf.dispose([qLn.xhat, qLn.rstd]);
    if (kLn !== null) tf.dispose([kLn.xhat, kLn.rstd]);
    return { y, saved: null };
  }
  return {
    y,
    saved: { ln1: ln1.saved, ln2: ln2.saved, inputs, lin, clipMask, qLn, kLn, attn: att.saved, preAct },
  };
}

/**
 * From dy = dL/dy: the LoRA gradients of this block and, when `needDx`, dx. The caller owns the
 * results; dy and saved are not disposed.
 */
export function blockBackward(
  env: BlockEnv,
  w: BlockWeights,
  lora: BlockLora,
  keep: BlockKeep,
  dy: tf.Tensor2D,
  saved: BlockSaved,
  needDx: boolean,
): { readonly dx: tf.Tensor2D | null; readonly grads: ModuleGrads[] } {
  const grads: ModuleGrads[] = [];
  // Index (in MPT_LINEARS order, bottom to top) of the lowest LoRA module: below it, only dx needs
  // gradients, so without needDx the backward stops there.
  const lowest = MPT_LINEARS.findIndex((m) => lora[m] !== undefined);
  if (!needDx && lowest < 0) return { dx: null, grads };
  const below = (m: MptLinearName) => needDx || MPT_LINEARS.indexOf(m) > lowest;
  const dense = acquireAll(w);
  const linear = (m: MptLinearName, g: tf.Tensor2D): tf.Tensor2D | null => {
    const out = linearBackward(
      env.layout,
      dense[m],
      g,
      saved.inputs[m] ?? null,
      lora[m] ?? null,
      saved.lin[m] ?? null,
      keep[m] ?? null,
      below(m),
    );
    if (out.grads !== null) grads.push({ module: m, ...out.grads });
    return out.dx;
  };
  try {
    const dAct = linear('down_proj', dy);
    if (dAct === null) return { dx: null, grads };
    const dPre = geluBackward(dAct, saved.preAct) as tf.Tensor2D;
    dAct.dispose();
    const dLn2 = linear('up_proj', dPre);
    dPre.dispose();
    if (dLn2 === null) return { dx: null, grads };
    const dx1 = tf.tidy(() => tf.add(dy, layerNormBackward(dLn2, w.norm2, saved.ln2)) as tf.Tensor2D);
    dLn2.dispose();
    const dCtx = linear('out_proj', dx1);
    if (dCtx === null) {
      dx1.dispose();
      return { dx: null, grads };
    }
    let dqkv = attentionBackward(env.layout, dCtx, saved.attn, env.attn);
    dCtx.dispose();
    if (saved.qLn !== null && saved.kLn !== null && w.qLn !== null && w.kLn !== null) {
      const [qLn, kLn, qW, kW] = [saved.qLn, saved.kLn, w.qLn, w.kLn];
      const next = tf.tidy(() => {
        const [dq, dk, dv] = tf.split(dqkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        return tf.concat([layerNormBackward(dq, qW, qLn), layerNormBackward(dk, kW, kLn), dv], 1);
      });
      dqkv.dispose();
      dqkv = next;
    }
    if (saved.clipMask !== null) {
      const next = tf.mul(dqkv, saved.clipMask) as tf.Tensor2D;
      dqkv.dispose();
      dqkv = next;
    }
    const dLn1 = linear('Wqkv', dqkv);
    dqkv.dispose();
    if (dLn1 === null || !needDx) {
      dLn1?.dispose();
      dx1.dispose();
      return { dx: null, grads };
    }
    const dx = tf.tidy(() => tf.add(dx1, layerNormBackward(dLn1, w.norm1, saved.ln1)) as tf.Tensor2D);
    tf.dispose([dLn1, dx1]);
    return { dx, grads };
  } finally {
    releaseAll(w, dense);
  }
}

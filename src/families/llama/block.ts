// One Llama decoder layer, forward and closed-form backward:
//   h = rms_1(x),  x1 = x + o_proj(attn(rope(q_proj h), rope(k_proj h), v_proj h)),
//   g = rms_2(x1), y  = x1 + down_proj(silu(gate_proj g) ⊙ up_proj g).
// Grouped-query attention repeats each key/value head over its query heads (repeat_kv) and runs the
// shared multi-head attention core (src/model/attention.ts); its backward sums the copies. The
// backward returns dx and this block's LoRA gradients, and stops where nothing below needs one. With
// a KV cache the rotated keys and the values are appended per key/value head (not repeated: the cache
// is nHeads/nKvHeads times smaller) and the new queries attend to them by group; the prompt runs the
// training path.
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
import type { KvCache } from '../../model/kv-cache.ts';
import { disposeLinearSaved, type LinearSaved, linearBackward, linearForward } from '../../model/linear.ts';
import type { DenseWeights, LinearWeightSource } from '../../model/linear-weights.ts';
import type { BlockLora } from '../../model/lora-state.ts';
import { LLAMA_LINEARS, type LlamaLinearName } from './architecture.ts';
import {
  disposeRmsNormSaved,
  type RmsNormSaved,
  repeatKv,
  repeatKvBackward,
  rmsNormBackward,
  rmsNormForward,
  swiglu,
  swigluBackward,
} from './ops.ts';
import { applyRope, applyRopeBackward, type RopeTensors } from './rope.ts';

export interface BlockWeights {
  readonly norm1: tf.Tensor1D;
  readonly norm2: tf.Tensor1D;
  readonly linears: Readonly<Record<LlamaLinearName, LinearWeightSource>>;
  /** Frozen biases (attention_bias / mlp_bias); absent where the config has none. */
  readonly biases: Readonly<Partial<Record<LlamaLinearName, tf.Tensor1D>>>;
}

export interface BlockCache {
  readonly kv: KvCache;
  readonly layer: number;
  /** [1, H, q, Tk] causal bias of the new positions against every cached key; null for the prompt. */
  readonly bias: tf.Tensor4D | null;
}

export interface BlockEnv {
  readonly layout: ComputeLayout;
  /** nHeads = the query heads; keys and values are repeated to them. */
  readonly attn: AttentionShape;
  readonly nKvHeads: number;
  readonly mask: AttentionMask | null;
  readonly eps: number;
  readonly rope: RopeTensors;
}

/** The four inputs Linears share (q/k/v read h, gate/up read g), by group. */
type Group = 'attnIn' | 'ctx' | 'mlpIn' | 'act';
const GROUP: Readonly<Record<LlamaLinearName, Group>> = {
  q_proj: 'attnIn',
  k_proj: 'attnIn',
  v_proj: 'attnIn',
  o_proj: 'ctx',
  gate_proj: 'mlpIn',
  up_proj: 'mlpIn',
  down_proj: 'act',
};
const ORDER: readonly Group[] = ['attnIn', 'ctx', 'mlpIn', 'act'];

export interface BlockSaved {
  readonly ln1: RmsNormSaved;
  readonly ln2: RmsNormSaved;
  /** Inputs of the Linear groups that have LoRA. */
  readonly inputs: Partial<Record<Group, tf.Tensor2D>>;
  readonly lin: Partial<Record<LlamaLinearName, LinearSaved>>;
  readonly attn: AttentionSaved;
  /** gate_proj and up_proj outputs (the SwiGLU's inputs). */
  readonly gate: tf.Tensor2D;
  readonly up: tf.Tensor2D;
}

function acquireAll(w: BlockWeights): Record<LlamaLinearName, DenseWeights> {
  return Object.fromEntries(LLAMA_LINEARS.map((m) => [m, w.linears[m].acquire()])) as Record<
    LlamaLinearName,
    DenseWeights
  >;
}

function releaseAll(w: BlockWeights, d: Record<LlamaLinearName, DenseWeights>): void {
  for (const m of LLAMA_LINEARS) w.linears[m].release(d[m]);
}

export function disposeBlockSaved(s: BlockSaved): void {
  disposeRmsNormSaved(s.ln1);
  disposeRmsNormSaved(s.ln2);
  for (const t of Object.values(s.inputs)) t.dispose();
  for (const l of Object.values(s.lin)) disposeLinearSaved(l);
  disposeAttentionSaved(s.attn);
  tf.dispose([s.gate, s.up]);
}

function maskOf(env: BlockEnv): AttentionMask {
  if (env.mask === null) throw new Error('Llama block: no attention mask for this forward');
  return env.mask;
}

/** [q | k | v] with each key/value head repeated to its query heads: the attention core's input. */
function repeatedQkv(env: BlockEnv, q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D): tf.Tensor2D {
  const nRep = env.attn.nHeads / env.nKvHeads;
  return tf.tidy(() => tf.concat([q, repeatKv(k, env.nKvHeads, nRep), repeatKv(v, env.nKvHeads, nRep)], 1));
}

/** ctx of the new positions with the KV cache (the caller owns it); appends k and v per kv head. */
function cachedContext(
  env: BlockEnv,
  c: BlockCache,
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
): tf.Tensor2D {
  const { rows, seqLen: t, nHeads: h, headDim: hd, scale } = env.attn;
  const kvH = env.nKvHeads;
  c.kv.append(
    c.layer,
    tf.keep(splitHeadsOf(k, rows, t, kvH, hd)),
    tf.keep(splitHeadsOf(v, rows, t, kvH, hd)),
  );
  if (c.bias === null) {
    const qkv = repeatedQkv(env, q, k, v);
    try {
      return attentionForward(env.layout, qkv, env.attn, maskOf(env), false).ctx;
    } finally {
      qkv.dispose();
    }
  }
  const kv = c.kv.layer(c.layer);
  if (kv === null) throw new Error(`Llama block: layer ${c.layer} has no cached keys`);
  return cachedAttention(q, kv.k, kv.v, { rows, q: t, nHeads: h, kvHeads: kvH, headDim: hd, scale }, c.bias);
}

/** y = block(x), appending to `cache` when given. The caller owns y and saved (null unless `save`). */
export function blockForward(
  env: BlockEnv,
  w: BlockWeights,
  lora: BlockLora,
  keep: BlockKeep,
  x: tf.Tensor2D,
  save: boolean,
  cache: BlockCache | null = null,
): { readonly y: tf.Tensor2D; readonly saved: BlockSaved | null } {
  if (save && cache !== null) throw new Error('Llama block: a cached forward keeps nothing for a backward');
  const dense = acquireAll(w);
  const inputs: Partial<Record<Group, tf.Tensor2D>> = {};
  const lin: Partial<Record<LlamaLinearName, LinearSaved>> = {};
  const temps: tf.Tensor[] = [];
  const hasLora = (g: Group) => LLAMA_LINEARS.some((m) => GROUP[m] === g && lora[m] !== undefined);
  // An input is kept for the backward where a Linear of its group has LoRA, else freed at the end.
  const input = (g: Group, t: tf.Tensor2D) => {
    if (save && hasLora(g)) inputs[g] = t;
    else temps.push(t);
    return t;
  };
  const linear = (m: LlamaLinearName, x: tf.Tensor2D): tf.Tensor2D => {
    const f = lora[m] ?? null;
    const out = linearForward(dense[m], x, f, keep[m] ?? null);
    if (save && f !== null) lin[m] = out.saved;
    else disposeLinearSaved(out.saved);
    const b = w.biases[m];
    if (b === undefined) return out.y;
    const y = tf.add(out.y, b) as tf.Tensor2D;
    out.y.dispose();
    return y;
  };
  const { rows, nHeads } = env.attn;
  const ln1 = rmsNormForward(x, w.norm1, env.eps);
  const h = input('attnIn', ln1.y);
  const [q, k, v] = [linear('q_proj', h), linear('k_proj', h), linear('v_proj', h)];
  const [qr, kr] = [applyRope(q, rows, nHeads, env.rope), applyRope(k, rows, env.nKvHeads, env.rope)];
  tf.dispose([q, k]);
  let att: { readonly ctx: tf.Tensor2D; readonly saved: AttentionSaved | null };
  if (cache === null) {
    const qkv = repeatedQkv(env, qr, kr, v);
    att = attentionForward(env.layout, qkv, env.attn, maskOf(env), save);
    qkv.dispose();
  } else att = { ctx: cachedContext(env, cache, qr, kr, v), saved: null };
  tf.dispose([qr, kr, v]);
  const o = linear('o_proj', input('ctx', att.ctx));
  const x1 = tf.add(x, o) as tf.Tensor2D;
  o.dispose();
  const ln2 = rmsNormForward(x1, w.norm2, env.eps);
  const g = input('mlpIn', ln2.y);
  const gate = linear('gate_proj', g);
  const up = linear('up_proj', g);
  const d = linear('down_proj', input('act', swiglu(gate, up)));
  const y = tf.add(x1, d) as tf.Tensor2D;
  tf.dispose([x1, d, ...temps]);
  releaseAll(w, dense);
  if (!save || att.saved === null) {
    disposeRmsNormSaved(ln1.saved);
    disposeRmsNormSaved(ln2.saved);
    tf.dispose([gate, up]);
    return { y, saved: null };
  }
  return { y, saved: { ln1: ln1.saved, ln2: ln2.saved, inputs, lin, attn: att.saved, gate, up } };
}

/** From dy: this block's LoRA gradients and, when `needDx`, dx. The caller owns the results. */
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
  // The lowest group with LoRA: below it only dx needs gradients, so without needDx the backward
  // stops there.
  const lowest = ORDER.findIndex((g) => LLAMA_LINEARS.some((m) => GROUP[m] === g && lora[m] !== undefined));
  if (!needDx && lowest < 0) return { dx: null, grads };
  const dense = acquireAll(w);
  const linear = (m: LlamaLinearName, g: tf.Tensor2D): tf.Tensor2D | null => {
    const out = linearBackward(
      env.layout,
      dense[m],
      g,
      saved.inputs[GROUP[m]] ?? null,
      lora[m] ?? null,
      saved.lin[m] ?? null,
      keep[m] ?? null,
      needDx || ORDER.indexOf(GROUP[m]) > lowest,
    );
    if (out.grads !== null) grads.push({ module: m, ...out.grads });
    return out.dx;
  };
  /** The sum of the input gradients of Linears that read the same input (null: none computed). */
  const sum = (parts: (tf.Tensor2D | null)[]): tf.Tensor2D | null => {
    const got = parts.filter((p): p is tf.Tensor2D => p !== null);
    if (got.length === 0) return null;
    const total = got.length === 1 ? (got[0] as tf.Tensor2D) : (tf.addN(got) as tf.Tensor2D);
    if (got.length > 1) tf.dispose(got);
    return total;
  };
  const { rows, nHeads } = env.attn;
  const kvH = env.nKvHeads;
  const nRep = nHeads / kvH;
  try {
    const dAct = linear('down_proj', dy);
    if (dAct === null) return { dx: null, grads };
    const { da, db } = swigluBackward(dAct, saved.gate, saved.up);
    dAct.dispose();
    const dG = sum([linear('gate_proj', da), linear('up_proj', db)]);
    tf.dispose([da, db]);
    if (dG === null) return { dx: null, grads };
    const dx1 = tf.tidy(() => tf.add(dy, rmsNormBackward(dG, w.norm2, saved.ln2)) as tf.Tensor2D);
    dG.dispose();
    const dCtx = linear('o_proj', dx1);
    if (dCtx === null) {
      dx1.dispose();
      return { dx: null, grads };
    }
    const dqkv = attentionBackward(env.layout, dCtx, saved.attn, env.attn);
    dCtx.dispose();
    const [dq, dk, dv] = tf.tidy(() => {
      const [q, kRep, vRep] = tf.split(dqkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      return [
        applyRopeBackward(q, rows, nHeads, env.rope),
        applyRopeBackward(repeatKvBackward(kRep, kvH, nRep), rows, kvH, env.rope),
        repeatKvBackward(vRep, kvH, nRep),
      ];
    });
    dqkv.dispose();
    const dH = sum([linear('q_proj', dq), linear('k_proj', dk), linear('v_proj', dv)]);
    tf.dispose([dq, dk, dv]);
    if (dH === null || !needDx) {
      dH?.dispose();
      dx1.dispose();
      return { dx: null, grads };
    }
    const dx = tf.tidy(() => tf.add(dx1, rmsNormBackward(dH, w.norm1, saved.ln1)) as tf.Tensor2D);
    tf.dispose([dH, dx1]);
    return { dx, grads };
  } finally {
    releaseAll(w, dense);
  }
}

// An independent, deliberately plain MPT + LoRA in TensorFlow.js autodiff: batched 4-D attention with
// tf.where masking, the textbook LayerNorm / erf-GELU formulas, full logits and logSoftmax·oneHot
// cross-entropy, gradients by tf.variableGrads. The fast model must equal it; it shares no code
// with src/model beyond the config type.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; the @tensorflow/tfjs bundle registers them all on import.
import '@tensorflow/tfjs';
import type { MptConfig } from '../../../src/families/mpt/config.ts';

export interface NaiveLora {
  readonly r: number;
  readonly scale: number;
  /** PEFT names → A [r, in] / B [out, r]. */
  readonly weights: ReadonlyMap<string, Float32Array>;
  /** Scaled dropout keep mask for (layer, module) over [rows·T, in], or null for none. */
  readonly keep?: (layer: number, module: string, count: number) => Float32Array | null;
}

export interface NaiveBatch {
  readonly rows: number;
  readonly seqLen: number;
  readonly inputIds: Int32Array;
  readonly labels: Int32Array;
  readonly attentionMask: Int32Array | null;
}

function slopes(h: number, max: number): number[] {
  const n = 2 ** Math.ceil(Math.log2(h));
  const base = Array.from({ length: n }, (_, i) => 2 ** (-(i + 1) * (max / n)));
  if (n === h) return base;
  return [...base.filter((_, i) => i % 2 === 1), ...base.filter((_, i) => i % 2 === 0)].slice(0, h);
}

function ln(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), w);
}

/** Loss sum, logits [rows, T, V] and d(loss sum)/d(every LoRA tensor), all on the host. */
export function naiveMpt(
  config: MptConfig,
  weights: ReadonlyMap<string, Float32Array>,
  lora: NaiveLora | null,
  batch: NaiveBatch,
): { lossSum: number; logits: Float32Array; grads: Map<string, Float32Array> } {
  const { dModel: d, nHeads: h, nLayers } = config;
  const hd = d / h;
  const f = Math.floor(d * config.expansionRatio);
  const { rows: b, seqLen: t } = batch;
  const w = (name: string, shape: number[]) => {
    const v = weights.get(name);
    if (v === undefined) throw new Error(`naive: missing ${name}`);
    return tf.tensor(v, shape);
  };
  const vars = new Map<string, tf.Variable>();
  if (lora !== null) {
    for (const [k, v] of lora.weights)
      vars.set(
        k,
        tf.tidy(() => tf.variable(tf.tensor(v), true, k)),
      );
  }
  const shapes: Record<string, [number, number]> = {
    Wqkv: [3 * d, d],
    out_proj: [d, d],
    up_proj: [f, d],
    down_proj: [d, f],
  };
  let logitsOut: Float32Array = new Float32Array(0);

  const lossFn = (): tf.Scalar => {
    const linear = (x: tf.Tensor2D, layer: number, part: string, module: string): tf.Tensor2D => {
      const path = `transformer.blocks.${layer}.${part}.${module}`;
      let y: tf.Tensor2D = tf.matMul(x, w(`${path}.weight`, shapes[module] as number[]), false, true);
      const a = vars.get(`base_model.model.${path}.lora_A.weight`);
      const bb = vars.get(`base_model.model.${path}.lora_B.weight`);
      if (lora !== null && a !== undefined && bb !== undefined) {
        const [outF, inF] = shapes[module] as [number, number];
        const keep = lora.keep?.(layer, module, b * t * inF) ?? null;
        const xd = keep === null ? x : tf.mul(x, tf.tensor2d(keep, [b * t, inF]));
        const a2 = tf.reshape(a, [lora.r, inF]) as tf.Tensor2D;
        const b2 = tf.reshape(bb, [outF, lora.r]) as tf.Tensor2D;
        y = tf.add(
          y,
          tf.mul(tf.matMul(tf.matMul(xd, a2, false, true), b2, false, true), lora.scale),
        ) as tf.Tensor2D;
      }
      return y;
    };
    const ids = tf.tensor1d(batch.inputIds, 'int32');
    let x = tf.gather(w('transformer.wte.weight', [config.vocabSize, d]), ids) as tf.Tensor2D;
    // Mask [b, 1, t, t]: key j visible from query i when j <= i and attention_mask[j] = 1.
    const causal = tf.tensor2d(
      Array.from({ length: t * t }, (_, k) => (k % t <= Math.floor(k / t) ? 1 : 0)),
      [t, t],
    );
    const pad = tf.tensor4d(batch.attentionMask ?? new Int32Array(b * t).fill(1), [b, 1, 1, t], 'float32');
    const visible = tf.greater(tf.mul(causal, pad), 0);
    const sl = config.attn.alibi ? slopes(h, config.attn.alibiBiasMax) : new Array<number>(h).fill(0);
    const pos = Array.from({ length: t }, (_, j) => j - (t - 1));
    const alibi = tf.tensor4d(
      sl.flatMap((s) => pos.map((p) => Math.fround(s) * p)),
      [1, h, 1, t],
    );
    const scale = config.attn.softmaxScale ?? 1 / Math.sqrt(hd);
    for (let l = 0; l < nLayers; l++) {
      const p = `transformer.blocks.${l}`;
      const a = ln(x, w(`${p}.norm_1.weight`, [d]), config.normEps) as tf.Tensor2D;
      let qkv = linear(a, l, 'attn', 'Wqkv');
      if (config.attn.clipQkv !== null) qkv = tf.clipByValue(qkv, -config.attn.clipQkv, config.attn.clipQkv);
      let [q, k, v] = tf.split(qkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      if (config.attn.qkLn) {
        q = ln(q, w(`${p}.attn.q_ln.weight`, [d]), config.normEps) as tf.Tensor2D;
        k = ln(k, w(`${p}.attn.k_ln.weight`, [d]), config.normEps) as tf.Tensor2D;
      }
      const heads = (z: tf.Tensor) => tf.transpose(tf.reshape(z, [b, t, h, hd]), [0, 2, 1, 3]);
      const scores = tf.add(tf.mul(tf.matMul(heads(q), heads(k), false, true), scale), alibi);
      const masked = tf.where(
        tf.broadcastTo(visible, [b, h, t, t]),
        scores,
        tf.fill([b, h, t, t], -3.4028234663852886e38),
      );
      const ctx = tf.reshape(tf.transpose(tf.matMul(tf.softmax(masked), heads(v)), [0, 2, 1, 3]), [
        b * t,
        d,
      ]) as tf.Tensor2D;
      const x1 = tf.add(x, linear(ctx, l, 'attn', 'out_proj')) as tf.Tensor2D;
      const m = ln(x1, w(`${p}.norm_2.weight`, [d]), config.normEps) as tf.Tensor2D;
      const up = linear(m, l, 'ffn', 'up_proj');
      const act = tf.mul(tf.mul(up, 0.5), tf.add(1, tf.erf(tf.div(up, Math.SQRT2)))) as tf.Tensor2D;
      x = tf.add(x1, linear(act, l, 'ffn', 'down_proj')) as tf.Tensor2D;
    }
    const hF = ln(x, w('transformer.norm_f.weight', [d]), config.normEps) as tf.Tensor2D;
    const logits = tf.mul(
      tf.matMul(hF, w('transformer.wte.weight', [config.vocabSize, d]), false, true),
      config.logitScale ?? 1,
    ) as tf.Tensor2D;
    logitsOut = logits.dataSync() as Float32Array;
    // Shift: position i predicts labels[i + 1]; -100 and the last position of each row are ignored.
    const target = new Int32Array(b * t);
    const weight = new Float32Array(b * t);
    for (let i = 0; i < b * t; i++) {
      const y = i % t === t - 1 ? -100 : (batch.labels[i + 1] as number);
      target[i] = Math.max(y, 0);
      weight[i] = y < 0 ? 0 : 1;
    }
    const logp = tf.logSoftmax(logits);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(target, 'int32'), config.vocabSize)), 1);
    return tf.neg(tf.sum(tf.mul(picked, tf.tensor1d(weight)))) as tf.Scalar;
  };

  const grads = new Map<string, Float32Array>();
  let lossSum: number;
  if (vars.size === 0) {
    lossSum = tf.tidy(() => lossFn().dataSync()[0] as number);
  } else {
    const res = tf.variableGrads(lossFn, [...vars.values()]);
    lossSum = res.value.dataSync()[0] as number;
    for (const [k, g] of Object.entries(res.grads)) grads.set(k, Float32Array.from(g.dataSync()));
    tf.dispose([res.value, ...Object.values(res.grads)]);
  }
  for (const v of vars.values()) v.dispose();
  return { lossSum, logits: logitsOut, grads };
}

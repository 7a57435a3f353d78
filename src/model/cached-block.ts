// One MPT block's forward for generation, with the KV cache: the same math as blockForward (pre-norm,
//   x1 = x + out_proj(attn(norm_1(x))),  y = x1 + down_proj(gelu(up_proj(norm_2(x1))))  )
// but the new positions' K and V go into the cache and attention reads every cached key. The first
// call (empty cache: the prompt) runs the training attention path, so its numbers equal forwardLogits.
import * as tf from '@tensorflow/tfjs-core';
import { MPT_LINEARS, type MptLinearName } from '../checkpoint/lora-targets.ts';
import { attentionForward } from './attention.ts';
import type { AttentionMask } from './attention-mask.ts';
import type { BlockLora, BlockWeights } from './block.ts';
import { cachedAttention, splitHeadsOf } from './cached-attention.ts';
import { gelu } from './gelu.ts';
import type { KvCache } from './kv-cache.ts';
import { layerNorm } from './layer-norm.ts';
import { linearForward } from './linear.ts';
import type { DenseWeights } from './linear-weights.ts';
import type { MptModel } from './mpt-model.ts';

/** How the new positions of this forward attend: the prompt (empty cache) or positions after it. */
export type CachedStep =
  | { readonly kind: 'prefill'; readonly mask: AttentionMask }
  | { readonly kind: 'extend'; readonly bias: Float32Array };

/** y [rows·q, D] = block l of x [rows·q, D]; appends this block's new K, V to the cache. The caller
 * owns y; x is not disposed. */
export function cachedBlockForward(
  model: MptModel,
  l: number,
  x: tf.Tensor2D,
  rows: number,
  q: number,
  cache: KvCache,
  step: CachedStep,
): tf.Tensor2D {
  const w: BlockWeights = model.blocks[l] as BlockWeights;
  const lora: BlockLora = model.blockLora(l);
  const c = model.config;
  const h = c.nHeads;
  const hd = model.headDim;
  const d = c.dModel;
  const dense = {} as Record<MptLinearName, DenseWeights>;
  for (const m of MPT_LINEARS) dense[m] = w.linears[m].acquire();
  try {
    return tf.tidy(() => {
      const linear = (m: MptLinearName, input: tf.Tensor2D): tf.Tensor2D => {
        const out = linearForward(dense[m], input, lora[m] ?? null, null);
        out.saved.u?.dispose();
        return out.y;
      };
      let qkv = linear('Wqkv', layerNorm(x, w.norm1, c.normEps));
      if (c.attn.clipQkv !== null) qkv = tf.clipByValue(qkv, -c.attn.clipQkv, c.attn.clipQkv);
      if (w.qLn !== null && w.kLn !== null) {
        const [qs, ks, vs] = tf.split(qkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        qkv = tf.concat([layerNorm(qs, w.qLn, c.normEps), layerNorm(ks, w.kLn, c.normEps), vs], 1);
      }
      const [qPart, kPart, vPart] = tf.split(qkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      cache.append(
        l,
        tf.keep(splitHeadsOf(kPart, rows, q, h, hd)),
        tf.keep(splitHeadsOf(vPart, rows, q, h, hd)),
      );
      let ctx: tf.Tensor2D;
      if (step.kind === 'prefill') {
        const shape = { rows, seqLen: q, nHeads: h, headDim: hd, scale: model.softmaxScale };
        ctx = attentionForward(model.layout, qkv, shape, step.mask, false).ctx;
      } else {
        const kv = cache.layer(l);
        if (kv === null) throw new Error(`cachedBlockForward: layer ${l} has no cached keys`);
        const shape = { rows, q, nHeads: h, headDim: hd, scale: model.softmaxScale };
        ctx = cachedAttention(qPart, kv.k, kv.v, shape, step.bias);
      }
      const x1 = tf.add(x, linear('out_proj', ctx)) as tf.Tensor2D;
      const up = linear('up_proj', layerNorm(x1, w.norm2, c.normEps));
      const y = tf.add(x1, linear('down_proj', gelu(up) as tf.Tensor2D)) as tf.Tensor2D;
      if (y.shape[1] !== d) throw new Error(`cachedBlockForward: width ${y.shape[1]}, expected ${d}`);
      return y;
    });
  } finally {
    for (const m of MPT_LINEARS) w.linears[m].release(dense[m]);
  }
}

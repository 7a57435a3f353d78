// The model's forward for generation with a KV cache: `prefill` runs a prompt (one row) and fills
// the cache; `extend` runs one new token per cached row and returns the next-token logits, so each
// new token costs one position, not the whole sequence. Logits come back as [rows, V] tensors the
// caller owns; the cache owns the keys and values.
import * as tf from '@tensorflow/tfjs-core';
import { alibiSlopes } from './alibi.ts';
import { AttentionMask } from './attention-mask.ts';
import { cachedAttentionBias } from './cached-attention.ts';
import { type CachedStep, cachedBlockForward } from './cached-block.ts';
import { outputLogits } from './forward.ts';
import { KvCache } from './kv-cache.ts';
import { layerNorm } from './layer-norm.ts';
import type { MptModel } from './mpt-model.ts';

/** An empty cache shaped for `model`. The caller disposes it. */
export function newKvCache(model: MptModel): KvCache {
  return new KvCache(model.config.nLayers, model.config.nHeads);
}

/** x [n, D] = wte[ids] (+ wpe[position] for checkpoints with learned positions). Caller owns it. */
function embedAt(model: MptModel, ids: Int32Array, firstPosition: number, perRow: number): tf.Tensor2D {
  const d = model.config.dModel;
  const v = model.config.vocabSize;
  const out = new Float32Array(ids.length * d);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number;
    if (!(Number.isInteger(id) && id >= 0 && id < v)) throw new Error(`token id ${id} is outside [0, ${v})`);
    out.set(model.wte.subarray(id * d, (id + 1) * d), i * d);
    if (model.wpe !== null) {
      const pos = (firstPosition + (i % perRow)) * d;
      for (let j = 0; j < d; j++)
        out[i * d + j] = (out[i * d + j] as number) + (model.wpe[pos + j] as number);
    }
  }
  return tf.tensor2d(out, [ids.length, d]);
}

function run(model: MptModel, cache: KvCache, x0: tf.Tensor2D, rows: number, q: number, step: CachedStep) {
  let x = x0;
  for (let l = 0; l < model.config.nLayers; l++) {
    const y = cachedBlockForward(model, l, x, rows, q, cache, step);
    x.dispose();
    x = y;
  }
  // Only each row's last position feeds the next token.
  const last = tf.tidy(() => {
    const picked =
      q === 1
        ? x
        : tf.gather(
            x,
            tf.tensor1d(
              Int32Array.from({ length: rows }, (_, r) => r * q + q - 1),
              'int32',
            ),
          );
    return layerNorm(picked as tf.Tensor2D, model.normF, model.config.normEps);
  });
  x.dispose();
  const logits = outputLogits(model, last);
  last.dispose();
  return logits;
}

function checkRoom(model: MptModel, total: number): void {
  const max = model.config.maxSeqLen;
  if (total > max) {
    throw new Error(`the sequence would have ${total} tokens; the model's context (max_seq_len) is ${max}`);
  }
}

/** Runs the prompt `ids` (one row) through an empty cache; logits [1, V] of its last token. */
export function prefill(model: MptModel, cache: KvCache, ids: Int32Array): tf.Tensor2D {
  if (cache.length !== 0) throw new Error('prefill: the cache is not empty');
  if (ids.length === 0) throw new Error('prefill: the prompt has no tokens');
  checkRoom(model, ids.length);
  const mask = new AttentionMask(model.biasCache, 1, ids.length, null);
  try {
    return run(model, cache, embedAt(model, ids, 0, ids.length), 1, ids.length, { kind: 'prefill', mask });
  } finally {
    mask.dispose();
  }
}

/** One new token per cached row (`tokens.length` = cache.rows); logits [rows, V] of those tokens. */
export function extend(model: MptModel, cache: KvCache, tokens: Int32Array): tf.Tensor2D {
  const rows = cache.rows;
  if (tokens.length !== rows) throw new Error(`extend: ${tokens.length} tokens for ${rows} cached rows`);
  const position = cache.length;
  checkRoom(model, position + 1);
  const c = model.config;
  const slopes = c.attn.alibi ? alibiSlopes(c.nHeads, c.attn.alibiBiasMax) : null;
  const bias = cachedAttentionBias(slopes, c.nHeads, 1, position + 1);
  return run(model, cache, embedAt(model, tokens, position, 1), rows, 1, { kind: 'extend', bias });
}

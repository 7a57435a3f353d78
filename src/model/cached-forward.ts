// The model's forward for generation with a KV cache: `prefill` runs a prompt (one row) and fills
// the cache; `extend` runs one new token per cached row and returns the next-token logits, so each
// new token costs one position, not the whole sequence. The blocks are the training blocks with the
// cache given (the family's blockForward). Logits come back as [rows, V] tensors the caller owns; the
// cache owns the keys and values.
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLm } from './causal-lm.ts';
import { outputLogits } from './forward.ts';
import type { KvCache } from './kv-cache.ts';

/** An empty cache shaped for `model`. The caller disposes it. */
export function newKvCache(model: CausalLm): KvCache {
  return model.newKvCache();
}

/** Runs `ids` (`perRow` new positions per row, after `cache.length` cached ones) through every block. */
function run(model: CausalLm, cache: KvCache, ids: Int32Array, rows: number, q: number): tf.Tensor2D {
  const pass = model.beginForward({ rows, seqLen: q, attentionMask: null }, cache);
  let x = model.embed(ids, q, cache.length);
  try {
    for (let l = 0; l < model.config.nLayers; l++) {
      const { y } = model.blockForward(pass, l, {}, x, false);
      x.dispose();
      x = y;
    }
  } catch (err) {
    x.dispose();
    throw err;
  } finally {
    pass.dispose();
  }
  // Only each row's last position feeds the next token.
  const picked =
    q === 1
      ? x
      : tf.tidy(() =>
          tf.gather(
            x,
            tf.tensor1d(
              Int32Array.from({ length: rows }, (_, r) => r * q + q - 1),
              'int32',
            ),
          ),
        );
  if (picked !== x) x.dispose();
  const { y: last } = model.finalNorm(picked as tf.Tensor2D, false);
  picked.dispose();
  const logits = outputLogits(model, last);
  last.dispose();
  return logits;
}

function checkRoom(model: CausalLm, total: number): void {
  const max = model.config.maxSeqLen;
  if (total > max) {
    throw new Error(`the sequence would have ${total} tokens; the model's context (max_seq_len) is ${max}`);
  }
}

/** Runs the prompt `ids` (one row) through an empty cache; logits [1, V] of its last token. */
export function prefill(model: CausalLm, cache: KvCache, ids: Int32Array): tf.Tensor2D {
  if (cache.length !== 0) throw new Error('prefill: the cache is not empty');
  if (ids.length === 0) throw new Error('prefill: the prompt has no tokens');
  checkRoom(model, ids.length);
  return run(model, cache, ids, 1, ids.length);
}

/** One new token per cached row (`tokens.length` = cache.rows); logits [rows, V] of those tokens. */
export function extend(model: CausalLm, cache: KvCache, tokens: Int32Array): tf.Tensor2D {
  const rows = cache.rows;
  if (tokens.length !== rows) throw new Error(`extend: ${tokens.length} tokens for ${rows} cached rows`);
  checkRoom(model, cache.length + 1);
  return run(model, cache, tokens, rows, 1);
}

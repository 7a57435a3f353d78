// Where decoding gets next-token logits from: the model with a KV cache (each new token costs one
// position), or without one (every step runs the whole sequence again: the bench's baseline and an
// independent check of the cache). Logits stay on the device as [rows, V], one row per running
// sequence, so that beam search can score them there; greedy and sampling read them with `hostRows`.
import type * as tf from '@tensorflow/tfjs-core';
import { extend, newKvCache, prefill } from '../model/cached-forward.ts';
import type { CausalLm } from '../model/causal-lm.ts';
import { forwardLogitsAt } from '../model/forward.ts';
import type { KvCache } from '../model/kv-cache.ts';

export interface LogitsSource {
  /** Logits after the prompt: [1, V]. The caller owns (disposes) them. */
  start(prompt: Int32Array): tf.Tensor2D;
  /** Row i continues the sequence of row parents[i] of the previous step with tokens[i]. The
   * caller owns the [parents.length, V] logits. */
  next(parents: Int32Array, tokens: Int32Array): tf.Tensor2D;
  /** Frees what the source holds on the device (the cache); the model stays the caller's. */
  dispose(): void;
}

/** The rows of `logits` on the host, one Float32Array [V] each; disposes `logits`. */
export async function hostRows(logits: tf.Tensor2D): Promise<Float32Array[]> {
  const [rows, v] = logits.shape;
  try {
    const data = (await logits.data()) as Float32Array;
    return Array.from({ length: rows }, (_, r) => data.subarray(r * v, (r + 1) * v));
  } finally {
    logits.dispose();
  }
}

const isIdentity = (parents: Int32Array, rows: number) =>
  parents.length === rows && parents.every((p, i) => p === i);

export function cachedLogits(model: CausalLm): LogitsSource {
  let cache: KvCache | null = newKvCache(model);
  const live = (): KvCache => {
    if (cache === null) throw new Error('the logits source was disposed');
    return cache;
  };
  return {
    start: (prompt) => prefill(model, live(), prompt),
    next(parents, tokens) {
      const c = live();
      if (!isIdentity(parents, c.rows)) c.select(parents);
      return extend(model, c, tokens);
    },
    dispose() {
      cache?.dispose();
      cache = null;
    },
  };
}

export function uncachedLogits(model: CausalLm): LogitsSource {
  let histories: number[][] = [];
  const run = (): tf.Tensor2D => {
    const rows = histories.length;
    const seqLen = (histories[0] as number[]).length;
    const inputIds = Int32Array.from(histories.flat());
    const positions = Int32Array.from({ length: rows }, (_, r) => r * seqLen + seqLen - 1);
    return forwardLogitsAt(model, { rows, seqLen, inputIds }, positions);
  };
  return {
    start(prompt) {
      histories = [Array.from(prompt)];
      return run();
    },
    next(parents, tokens) {
      histories = Array.from(parents, (p, i) => [...(histories[p] as number[]), tokens[i] as number]);
      return run();
    },
    dispose() {
      histories = [];
    },
  };
}

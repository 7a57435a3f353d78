// The tied output layer (wte [V, D]) cut into vocab chunks for the fused cross-entropy: W_c [kc, D]
// and, in the plain-2d layout, W_cᵀ [D, kc], so both the logits and the dL/dh GEMMs are plain 2-D
// matmuls with cached weight packing.
import * as tf from '@tensorflow/tfjs-core';
import type { ComputeLayout } from './backend.ts';
import { transposeHost } from './host-transpose.ts';
import type { VocabChunks } from './loss.ts';

/** Plain-2d: keep K·N·4 bytes of each vocab GEMM's weight operand near 3.3 MB (1576 columns at
 * D = 512). docs/wasm-performance.md found ≲ 13 MB fast on its machine; on this project's 2-core
 * EPYC, paired runs of the CE GEMMs gave 12.3 GF/s at 1576 columns against 11.1 at 6304, and
 * narrower chunks (788, 1056) were within 2% of 1576. */
const CHUNK_BYTES = 3_300_000;

export function defaultVocabChunk(layout: ComputeLayout, vocabSize: number, dModel: number): number {
  if (layout === 'batched') return vocabSize;
  const widest = Math.max(8, Math.floor(CHUNK_BYTES / (4 * dModel)));
  const chunks = Math.ceil(vocabSize / widest);
  return Math.min(vocabSize, Math.ceil(vocabSize / chunks / 8) * 8);
}

/** Uploads the chunks of the host table `wte` ([v, d] row-major). Disposed with the model. */
export function vocabChunks(
  layout: ComputeLayout,
  wte: Float32Array,
  v: number,
  d: number,
  kc: number,
): VocabChunks {
  const w: tf.Tensor2D[] = [];
  const wt: tf.Tensor2D[] = [];
  for (let c0 = 0; c0 < v; c0 += kc) {
    const rows = Math.min(kc, v - c0);
    const part = wte.subarray(c0 * d, (c0 + rows) * d);
    w.push(tf.tensor2d(part, [rows, d]));
    if (layout === 'plain-2d') wt.push(tf.tensor2d(transposeHost(part, rows, d), [d, rows]));
  }
  return { w, wt: layout === 'plain-2d' ? wt : null };
}

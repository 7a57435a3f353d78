// Where a frozen Linear's weight lives: float32 tensors uploaded once (the default), or int8 on the
// host (`load_8bit`) dequantized into temporary tensors for the span of one layer's forward or
// backward. Both hand out the same DenseWeights, so the math never knows which it got.
import * as tf from '@tensorflow/tfjs-core';
import type { ComputeLayout } from './backend.ts';
import { transposeHost } from './host-transpose.ts';
import { dequantizeRows, type Int8Matrix, quantizeRows } from './quantize8.ts';

export interface DenseWeights {
  /** W [out, in] (PyTorch layout). */
  readonly w: tf.Tensor2D;
  /** Wᵀ [in, out] for the plain-2d layout's forward matmul; null in the batched layout. */
  readonly wt: tf.Tensor2D | null;
}

export interface LinearWeightSource {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Tensors valid until the matching release(); the source owns them. */
  acquire(): DenseWeights;
  release(w: DenseWeights): void;
  dispose(): void;
}

function upload(layout: ComputeLayout, w: Float32Array, wt: Float32Array | null, out: number, inF: number) {
  return {
    w: tf.tensor2d(w, [out, inF]),
    wt: layout === 'plain-2d' ? tf.tensor2d(wt ?? transposeHost(w, out, inF), [inF, out]) : null,
  };
}

/** Float32 weights resident for the model's lifetime. `data` is W [out, in], row-major. */
export function denseWeightSource(
  layout: ComputeLayout,
  data: Float32Array,
  outFeatures: number,
  inFeatures: number,
): LinearWeightSource {
  const held = upload(layout, data, null, outFeatures, inFeatures);
  return {
    inFeatures,
    outFeatures,
    acquire: () => held,
    release: () => {},
    dispose: () => {
      held.w.dispose();
      held.wt?.dispose();
    },
  };
}

/** Int8 weights with per-output-channel scales on the host; each acquire() dequantizes and uploads,
 * release() frees the float copy, so only the layer in use is ever float32 on the device. */
export function int8WeightSource(
  layout: ComputeLayout,
  data: Float32Array,
  outFeatures: number,
  inFeatures: number,
): LinearWeightSource & { readonly quantized: Int8Matrix } {
  const quantized = quantizeRows(data, outFeatures, inFeatures);
  return {
    inFeatures,
    outFeatures,
    quantized,
    acquire: () =>
      upload(
        layout,
        dequantizeRows(quantized, false),
        layout === 'plain-2d' ? dequantizeRows(quantized, true) : null,
        outFeatures,
        inFeatures,
      ),
    release: (w) => {
      w.w.dispose();
      w.wt?.dispose();
    },
    dispose: () => {},
  };
}

// Where a frozen Linear's weight lives: float32 tensors uploaded once (the default), or int8 on the
// host (`load_8bit`) converted into temporary tensors for the span of one layer's forward or
// backward. Both hand out DenseWeights; int8 ones come with their per-row scales, which the linear
// applies to its (much smaller) activations instead of to W.
import * as tf from '@tensorflow/tfjs-core';
import type { ComputeLayout } from './backend.ts';
import { transposeHost } from './host-transpose.ts';
import { type Int8Matrix, quantizeRows } from './quantize8.ts';

export interface DenseWeights {
  /** W [out, in] (PyTorch layout). */
  readonly w: tf.Tensor2D;
  /** Wᵀ [in, out] for the plain-2d layout's forward matmul; null in the batched layout. */
  readonly wt: tf.Tensor2D | null;
  /**
   * null: `w` is the weight. Otherwise [1, out] per-output-channel scales and `w` holds the int8
   * values as floats: the weight is w·diag(scale), so y = (x·wᵀ)·diag(scale) and
   * dx = (dy·diag(scale))·w. Turning int8 into float32 is then one native copy (about 15x faster
   * than scaling every value in JavaScript), and the scale costs one multiply of [N, out].
   */
  readonly rowScale: tf.Tensor2D | null;
}

export interface LinearWeightSource {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Tensors valid until the matching release(); the source owns them. */
  acquire(): DenseWeights;
  release(w: DenseWeights): void;
  dispose(): void;
}

function upload(layout: ComputeLayout, w: Float32Array, out: number, inF: number) {
  return {
    w: tf.tensor2d(w, [out, inF]),
    wt: layout === 'plain-2d' ? tf.tensor2d(transposeHost(w, out, inF), [inF, out]) : null,
  };
}

/** Float32 weights resident for the model's lifetime. `data` is W [out, in], row-major. */
export function denseWeightSource(
  layout: ComputeLayout,
  data: Float32Array,
  outFeatures: number,
  inFeatures: number,
): LinearWeightSource {
  const held = { ...upload(layout, data, outFeatures, inFeatures), rowScale: null };
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

/**
 * Host arrays for int8 weights turned into float32, kept between acquisitions by length (so one
 * block's worth at most: the memory plan counts it). A fresh 800 MB Float32Array costs its zero-fill
 * and page faults on every acquisition; a reused one only the conversion. An array goes back to the
 * pool when its tensor is disposed: every backend has copied or dropped it by then.
 */
const hostPool = new Map<number, Float32Array[]>();

function takeHostArray(length: number): Float32Array {
  return hostPool.get(length)?.pop() ?? new Float32Array(length);
}

function giveHostArray(a: Float32Array): void {
  const free = hostPool.get(a.length) ?? [];
  free.push(a);
  hostPool.set(a.length, free);
}

/** Int8 weights with per-output-channel scales on the host; each acquire() converts the values to
 * float32 and uploads them with the scales, release() frees them, so only the layer in use is ever
 * float32 on the device. */
export function int8WeightSource(
  layout: ComputeLayout,
  data: Float32Array,
  outFeatures: number,
  inFeatures: number,
): LinearWeightSource & { readonly quantized: Int8Matrix } {
  const quantized = quantizeRows(data, outFeatures, inFeatures);
  const hostOf = new WeakMap<DenseWeights, Float32Array>();
  return {
    inFeatures,
    outFeatures,
    quantized,
    acquire: () => {
      const values = takeHostArray(quantized.values.length);
      values.set(quantized.values);
      const dense = {
        ...upload(layout, values, outFeatures, inFeatures),
        rowScale: tf.tensor2d(quantized.scales, [1, outFeatures]),
      };
      hostOf.set(dense, values);
      return dense;
    },
    release: (w) => {
      w.w.dispose();
      w.wt?.dispose();
      w.rowScale?.dispose();
      const host = hostOf.get(w);
      if (host !== undefined) giveHostArray(host);
      hostOf.delete(w);
    },
    // The pool is shared by every int8 source; a disposed model lets it go.
    dispose: () => hostPool.clear(),
  };
}

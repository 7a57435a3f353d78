// A tensor on the host (not in TensorFlow.js): what checkpoint and adapter readers hand out, one at a
// time, already converted to float32. Shape is row-major (C order), PyTorch [out, in] for Linear weights.

export interface HostTensor {
  /** The state-dict name as stored, e.g. `transformer.blocks.0.attn.Wqkv.weight`. */
  readonly name: string;
  readonly shape: readonly number[];
  /** Row-major float32 values; length is the product of `shape` (1 for a 0-rank tensor). */
  readonly data: Float32Array;
}

/** Number of elements of a shape (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

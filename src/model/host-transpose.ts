// Row-major transpose of a host matrix, cache-blocked: used to store frozen weights in both layouts
// (W [out,in] and Wᵀ [in,out]) without a device transpose, and for small LoRA factors each step.

const BLOCK = 64;

/** Returns the [cols, rows] transpose of the row-major [rows, cols] matrix `src`. */
export function transposeHost(src: Float32Array, rows: number, cols: number): Float32Array {
  if (src.length !== rows * cols) {
    throw new Error(`transposeHost: ${src.length} values do not form a [${rows}, ${cols}] matrix`);
  }
  const out = new Float32Array(rows * cols);
  for (let r0 = 0; r0 < rows; r0 += BLOCK) {
    const r1 = Math.min(rows, r0 + BLOCK);
    for (let c0 = 0; c0 < cols; c0 += BLOCK) {
      const c1 = Math.min(cols, c0 + BLOCK);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[base + c] as number;
      }
    }
  }
  return out;
}

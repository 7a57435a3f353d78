// `load_8bit`: frozen Linear weights kept as int8 with one float32 scale per output channel (row of
// W [out,in]), scale = max|row| / 127, value = round(w / scale). Dequantized per layer when used.

export interface Int8Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly values: Int8Array;
  /** One scale per row; a zero row has scale 0. */
  readonly scales: Float32Array;
}

/** Symmetric per-row absmax quantization of a row-major [rows, cols] matrix. */
export function quantizeRows(data: Float32Array, rows: number, cols: number): Int8Matrix {
  if (data.length !== rows * cols) {
    throw new Error(`quantizeRows: ${data.length} values do not form a [${rows}, ${cols}] matrix`);
  }
  const values = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let amax = 0;
    for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(data[base + c] as number));
    const scale = Math.fround(amax / 127);
    scales[r] = scale;
    if (scale === 0) continue;
    for (let c = 0; c < cols; c++) values[base + c] = Math.round((data[base + c] as number) / scale);
  }
  return { rows, cols, values, scales };
}

/** W [rows, cols] as float32 (transposed = false) or Wᵀ [cols, rows] (transposed = true). */
export function dequantizeRows(m: Int8Matrix, transposed: boolean): Float32Array {
  const { rows, cols, values, scales } = m;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const scale = scales[r] as number;
    const base = r * cols;
    if (transposed) for (let c = 0; c < cols; c++) out[c * rows + r] = (values[base + c] as number) * scale;
    else for (let c = 0; c < cols; c++) out[base + c] = (values[base + c] as number) * scale;
  }
  return out;
}

// How gradient values travel in data frames: float32 as they are (the default; every member and
// observer ends with bitwise-identical bytes, and N workers equal one), or bfloat16, the top 16 bits
// of a float32 rounded to nearest, ties to even (as torch's .to(torch.bfloat16)): half the bytes on
// the wire for ~3 significant digits. A value is rounded when it goes on the wire; what a member
// keeps of a sum it publishes is the rounded value, so every participant still ends with the same
// bytes. The header's encoding field lets a receiver refuse a sender that uses the other one.

export const GRADIENT_ENCODINGS = ['f32', 'bf16'] as const;
export type GradientEncoding = (typeof GRADIENT_ENCODINGS)[number];
export const DEFAULT_GRADIENT_ENCODING: GradientEncoding = 'f32';

export const isGradientEncoding = (v: unknown): v is GradientEncoding =>
  typeof v === 'string' && (GRADIENT_ENCODINGS as readonly string[]).includes(v);

/** Bytes one element takes in a frame. */
export const bytesPerElement = (e: GradientEncoding): number => (e === 'bf16' ? 2 : 4);

/** The header's code for an encoding (f32 is 0: the field was reserved, and zero, before bf16). */
export const encodingCode = (e: GradientEncoding): number => (e === 'bf16' ? 1 : 0);
export const encodingOfCode = (code: number): GradientEncoding | undefined =>
  code === 0 ? 'f32' : code === 1 ? 'bf16' : undefined;

/** The bfloat16 bits of a float32 given by its bits: round to nearest even; NaN stays a (quiet) NaN. */
function bf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  // Finite values above bfloat16's largest (~3.3895e38) round to ±Infinity, which receivers refuse.
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

/** Writes `src` as bfloat16 into `dst` (2 bytes per element, little-endian). */
export function encodeBf16(src: Float32Array, dst: Uint8Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const n = src.length;
  if (dst.byteOffset % 2 === 0) {
    const out = new Uint16Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) out[i] = bf16Bits(bits[i]!);
    return;
  }
  for (let i = 0; i < n; i++) {
    const b = bf16Bits(bits[i]!);
    dst[2 * i] = b & 0xff;
    dst[2 * i + 1] = b >>> 8;
  }
}

/** Reads bfloat16 `src` (2 bytes per element) into `dst` as float32 (exact: bf16 ⊂ f32). */
export function decodeBf16(src: Uint8Array, dst: Float32Array): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  const n = dst.length;
  if (src.byteOffset % 2 === 0) {
    const halves = new Uint16Array(src.buffer, src.byteOffset, n);
    for (let i = 0; i < n; i++) out[i] = halves[i]! << 16;
    return;
  }
  for (let i = 0; i < n; i++) out[i] = (src[2 * i]! | (src[2 * i + 1]! << 8)) << 16;
}

/** Rounds `xs` in place to the values bfloat16 carries (what a receiver of them decodes). */
export function roundToBf16(xs: Float32Array): void {
  const bits = new Uint32Array(xs.buffer, xs.byteOffset, xs.length);
  for (let i = 0; i < bits.length; i++) bits[i] = bf16Bits(bits[i]!) << 16;
}

// Stored tensor dtypes (safetensors codes; torch storages map onto them) and their exact conversion
// to float32, the only dtype the model computes in. Little-endian data, as both formats store it.
import { endianness } from 'node:os';

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Readonly<Record<Dtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isDtype(s: string): s is Dtype {
  return Object.hasOwn(DTYPE_BYTES, s);
}

// Typed-array views over file bytes use the host byte order; every supported host is little-endian,
// but say so plainly rather than return garbage on a big-endian one.
if (endianness() !== 'LE') throw new Error('lora-mpt reads checkpoints on little-endian hosts only');

/** float16 bits → float32 value, exact (subnormals, infinities and NaN included). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

/**
 * Converts `count` elements of `dtype` from `src` (byte offset 0, any alignment) into `out` starting at
 * element `outOffset`. bf16 → f32 is a 16-bit shift, f16 → f32 is exact; f64/i64 round to nearest f32.
 */
export function convertToFloat32(
  src: Uint8Array,
  dtype: Dtype,
  count: number,
  out: Float32Array,
  outOffset = 0,
): void {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  switch (dtype) {
    case 'F32':
      // A byte copy: works for unaligned sources and keeps NaN payloads bit-exact.
      new Uint8Array(out.buffer, out.byteOffset + outOffset * 4, count * 4).set(src.subarray(0, count * 4));
      return;
    case 'BF16': {
      const bits = new Uint32Array(out.buffer, out.byteOffset + outOffset * 4, count);
      // Aligned sources (the loaders' scratch buffers) take a typed view: several times faster.
      if (src.byteOffset % 2 === 0) {
        const u16 = new Uint16Array(src.buffer, src.byteOffset, count);
        for (let i = 0; i < count; i++) bits[i] = u16[i]! << 16;
      } else {
        for (let i = 0; i < count; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      }
      return;
    }
    case 'F16':
      for (let i = 0; i < count; i++) out[outOffset + i] = halfToFloat(dv.getUint16(2 * i, true));
      return;
    case 'F64':
      for (let i = 0; i < count; i++) out[outOffset + i] = dv.getFloat64(8 * i, true);
      return;
    case 'I64':
      for (let i = 0; i < count; i++) out[outOffset + i] = Number(dv.getBigInt64(8 * i, true));
      return;
    case 'I32':
      for (let i = 0; i < count; i++) out[outOffset + i] = dv.getInt32(4 * i, true);
      return;
    case 'I16':
      for (let i = 0; i < count; i++) out[outOffset + i] = dv.getInt16(2 * i, true);
      return;
    case 'I8':
      for (let i = 0; i < count; i++) out[outOffset + i] = dv.getInt8(i);
      return;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < count; i++) out[outOffset + i] = src[i]!;
      return;
  }
}

/** The float dtypes lora-mpt writes (merged checkpoints). */
export type FloatDtype = 'F32' | 'BF16' | 'F16';

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * float32 value → bfloat16 bits, rounded to nearest, ties to even (torch's `.to(torch.bfloat16)`):
 * add 0x7fff plus the kept part's lowest bit, then drop the low 16 bits. NaN stays a quiet NaN.
 */
export function floatToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0] as number;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return (bits >>> 16) | 0x40;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * float32 value → float16 bits, rounded to nearest, ties to even (torch's `.to(torch.float16)`):
 * beyond the largest half (65504, plus half an ulp) → ±Infinity; below 2^-14 → subnormals.
 */
export function floatToHalfBits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0] as number;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15; // the half's biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): the value in units of 2^-24, rounded half to even.
    if (e < -10) return sign; // below half of the smallest subnormal: rounds to zero
    const m = mant | 0x800000; // with the implicit bit
    const shift = 14 - e; // 14..24
    const q = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (q + (rest > half || (rest === half && (q & 1) === 1) ? 1 : 0));
  }
  const q = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa steps the exponent, up to Infinity: both are the right result.
  return sign | (q + (rest > 0x1000 || (rest === 0x1000 && (q & 1) === 1) ? 1 : 0));
}

/** float32 values → little-endian bytes of `dtype` (a copy; bf16/f16 rounded to nearest even). */
export function convertFromFloat32(data: Float32Array, dtype: FloatDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const round = dtype === 'BF16' ? floatToBf16Bits : floatToHalfBits;
  for (let i = 0; i < data.length; i++) out[i] = round(data[i] as number);
  return new Uint8Array(out.buffer);
}

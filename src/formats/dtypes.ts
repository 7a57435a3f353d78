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

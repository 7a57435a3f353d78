// A safetensors file read as stored, written here from the format's spec (8-byte little-endian
// header length, JSON header, data) rather than through src/formats, so tests that compare stored
// bits against a reference do not trust the reader under test.
import { readFileSync } from 'node:fs';

export interface RawTensor {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly bytes: Buffer;
}

export function readRawSafetensors(path: string): Map<string, RawTensor> {
  const file = readFileSync(path);
  const n = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, RawTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = e.data_offsets;
    out.set(name, { dtype: e.dtype, shape: e.shape, bytes: file.subarray(8 + n + begin, 8 + n + end) });
  }
  return out;
}

/** Every tensor of all the `*.safetensors` files given, by name. */
export function readRawShards(paths: readonly string[]): Map<string, RawTensor> {
  return new Map(paths.flatMap((p) => [...readRawSafetensors(p)]));
}

/** How many 16-bit elements differ between two half-precision tensors' bytes. */
export function differingHalfElements(a: Buffer, b: Buffer): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let n = 0;
  for (let i = 0; i < a.length; i += 2) if (a.readUInt16LE(i) !== b.readUInt16LE(i)) n++;
  return n;
}

// Where the golden MPT fixtures (made by tools/reference/make_mpt_fixtures.py) live, and small
// helpers the loading tests share.
import { fileURLToPath } from 'node:url';
import type { HostTensor } from '../../src/formats/host-tensor.ts';

export const FIXTURES = fileURLToPath(new URL('../fixtures/mpt/', import.meta.url));
export const CASES = ['h12-wqkv', 'h6-all', 'h8-clip-bf16'] as const;

export async function collect(it: AsyncIterable<HostTensor>): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for await (const t of it) out.set(t.name, t);
  return out;
}

/** Bitwise equality of two float32 arrays (NaN payloads and -0 included). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.every((v, i) => v === y[i]);
}

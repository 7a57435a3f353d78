// Reads the ids files written by tools/reference/tokenizer_parity.py (gzip): "LMTKIDS1", u32 meta
// length, meta JSON, u32 count, then per record u32 index, u32 n, n x u16 ids, little-endian.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export interface IdsFile {
  readonly meta: Readonly<Record<string, string>>;
  readonly records: ReadonlyMap<number, readonly number[]>;
}

export function readIdsFile(path: string | URL): IdsFile {
  const buf = gunzipSync(readFileSync(path));
  if (buf.toString('latin1', 0, 8) !== 'LMTKIDS1') throw new Error(`${path}: not an ids file`);
  const metaLen = buf.readUInt32LE(8);
  const meta = JSON.parse(buf.toString('utf8', 12, 12 + metaLen)) as Record<string, string>;
  let o = 12 + metaLen;
  const count = buf.readUInt32LE(o);
  o += 4;
  const records = new Map<number, number[]>();
  for (let r = 0; r < count; r++) {
    const index = buf.readUInt32LE(o);
    const n = buf.readUInt32LE(o + 4);
    o += 8;
    const ids = new Array<number>(n);
    for (let i = 0; i < n; i++) ids[i] = buf.readUInt16LE(o + 2 * i);
    o += 2 * n;
    records.set(index, ids);
  }
  return { meta, records };
}

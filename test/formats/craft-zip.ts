// Writes small stored (uncompressed) zip archives for tests: crafted torch.save files — malicious
// pickles, strided tensors — and the zip64 layout that multi-GB checkpoint shards use.
import { crc32 } from 'node:zlib';

export interface CraftEntry {
  readonly name: string;
  readonly data: Uint8Array;
}

const u16 = (v: number) => Buffer.from([v & 0xff, (v >> 8) & 0xff]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const u64 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};

/** A zip of stored entries. With `zip64`, sizes and offsets go in zip64 extra fields and end records. */
export function craftZip(entries: readonly CraftEntry[], zip64 = false): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let at = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const crc = crc32(e.data);
    const local = Buffer.concat([
      u32(0x04034b50),
      u16(zip64 ? 45 : 20),
      u16(0),
      u16(0),
      u16(0),
      u16(0x21),
      u32(crc),
      u32(e.data.length),
      u32(e.data.length),
      u16(name.length),
      u16(0),
      name,
    ]);
    const extra = zip64
      ? Buffer.concat([u16(1), u16(24), u64(e.data.length), u64(e.data.length), u64(at)])
      : Buffer.alloc(0);
    const big = zip64 ? 0xffffffff : -1;
    central.push(
      Buffer.concat([
        u32(0x02014b50),
        u16(zip64 ? 45 : 20),
        u16(zip64 ? 45 : 20),
        u16(0),
        u16(0),
        u16(0),
        u16(0x21),
        u32(crc),
        u32(zip64 ? big : e.data.length),
        u32(zip64 ? big : e.data.length),
        u16(name.length),
        u16(extra.length),
        u16(0),
        u16(0),
        u16(0),
        u32(0),
        u32(zip64 ? big : at),
        name,
        extra,
      ]),
    );
    parts.push(local, Buffer.from(e.data));
    at += local.length + e.data.length;
  }
  const cd = Buffer.concat(central);
  const cdOffset = at;
  const tail: Buffer[] = [];
  if (zip64) {
    const z64At = cdOffset + cd.length;
    tail.push(
      Buffer.concat([
        u32(0x06064b50),
        u64(44),
        u16(45),
        u16(45),
        u32(0),
        u32(0),
        u64(entries.length),
        u64(entries.length),
        u64(cd.length),
        u64(cdOffset),
      ]),
      Buffer.concat([u32(0x07064b50), u32(0), u64(z64At), u32(1)]),
      Buffer.concat([
        u32(0x06054b50),
        u16(0),
        u16(0),
        u16(0xffff),
        u16(0xffff),
        u32(0xffffffff),
        u32(0xffffffff),
        u16(0),
      ]),
    );
  } else {
    tail.push(
      Buffer.concat([
        u32(0x06054b50),
        u16(0),
        u16(0),
        u16(entries.length),
        u16(entries.length),
        u32(cd.length),
        u32(cdOffset),
        u16(0),
      ]),
    );
  }
  return Buffer.concat([...parts, cd, ...tail]);
}

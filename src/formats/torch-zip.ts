// The zip container of torch.save files (`pytorch_model*.bin`): reads the central directory (zip64
// included: MPT-7B shards are ~10 GB) and locates each entry's bytes, which torch stores uncompressed,
// so tensors can be read in place by file offset.
import { type FileHandle, open } from 'node:fs/promises';
import { readExactly } from './tensor-bytes.ts';

export interface ZipEntry {
  readonly name: string;
  /** Compression method; torch.save writes 0 (stored). */
  readonly method: number;
  readonly size: number;
  readonly compressedSize: number;
  readonly localHeaderOffset: number;
}

export class ZipError extends Error {
  override readonly name = 'ZipError';
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const U32_MAX = 0xffffffff;

function u64(dv: DataView, at: number, source: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(`${source}: zip offset ${v} is too large`);
  return Number(v);
}

/** An open zip archive whose entries are stored (uncompressed); close() when done. */
export class ZipArchive {
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    readonly path: string,
    readonly fh: FileHandle,
    readonly entries: ReadonlyMap<string, ZipEntry>,
  ) {}

  static async open(path: string): Promise<ZipArchive> {
    const fh = await open(path, 'r');
    try {
      return new ZipArchive(path, fh, await readCentralDirectory(fh, path));
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new ZipError(`${this.path}: the archive has no entry "${name}"`);
    return e;
  }

  /** File offset of the entry's first data byte (after its local header, whose extra field may differ). */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const known = this.dataOffsets.get(entry.name);
    if (known !== undefined) return known;
    if (entry.method !== 0) {
      throw new ZipError(
        `${this.path}: entry "${entry.name}" is compressed (method ${entry.method}); torch.save writes stored entries — re-save the checkpoint with torch.save or convert it to safetensors`,
      );
    }
    const head = new Uint8Array(30);
    await readExactly(this.fh, head, entry.localHeaderOffset, this.path);
    const dv = new DataView(head.buffer);
    if (dv.getUint32(0, true) !== LOCAL_SIG) {
      throw new ZipError(
        `${this.path}: entry "${entry.name}" has no local header at ${entry.localHeaderOffset}`,
      );
    }
    const at = entry.localHeaderOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
    this.dataOffsets.set(entry.name, at);
    return at;
  }

  /** The whole entry (for small ones: data.pkl, byteorder, version). */
  async read(entry: ZipEntry): Promise<Uint8Array> {
    const out = new Uint8Array(entry.size);
    await readExactly(this.fh, out, await this.dataOffset(entry), this.path);
    return out;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

async function findEocd(fh: FileHandle, size: number, source: string): Promise<{ dv: DataView; at: number }> {
  // The end record is 22 bytes plus a comment of at most 65535 bytes.
  const tail = Math.min(size, 22 + 0xffff);
  const buf = new Uint8Array(tail);
  await readExactly(fh, buf, size - tail, source);
  const dv = new DataView(buf.buffer);
  for (let i = tail - 22; i >= 0; i--) {
    if (dv.getUint32(i, true) === EOCD_SIG) return { dv: new DataView(buf.buffer, i), at: size - tail + i };
  }
  throw new ZipError(
    `${source}: not a zip archive (no end-of-central-directory record); is it a legacy (pre-1.6) torch.save file?`,
  );
}

async function readCentralDirectory(fh: FileHandle, source: string): Promise<Map<string, ZipEntry>> {
  const size = (await fh.stat()).size;
  const { dv: eocd, at: eocdAt } = await findEocd(fh, size, source);
  let count = eocd.getUint16(10, true);
  let cdSize = eocd.getUint32(12, true);
  let cdOffset = eocd.getUint32(16, true);
  if (count === 0xffff || cdSize === U32_MAX || cdOffset === U32_MAX) {
    const loc = new Uint8Array(20);
    await readExactly(fh, loc, eocdAt - 20, source);
    const ldv = new DataView(loc.buffer);
    if (ldv.getUint32(0, true) !== ZIP64_LOCATOR_SIG) throw new ZipError(`${source}: zip64 locator missing`);
    const z = new Uint8Array(56);
    await readExactly(fh, z, u64(ldv, 8, source), source);
    const zdv = new DataView(z.buffer);
    if (zdv.getUint32(0, true) !== ZIP64_EOCD_SIG) throw new ZipError(`${source}: zip64 end record missing`);
    count = u64(zdv, 32, source);
    cdSize = u64(zdv, 40, source);
    cdOffset = u64(zdv, 48, source);
  }
  if (cdOffset + cdSize > size)
    throw new ZipError(`${source}: central directory runs past the end of the file`);
  const cd = new Uint8Array(cdSize);
  await readExactly(fh, cd, cdOffset, source);
  const dv = new DataView(cd.buffer);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || dv.getUint32(p, true) !== CENTRAL_SIG) {
      throw new ZipError(`${source}: central directory entry ${i} is damaged`);
    }
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    const name = new TextDecoder().decode(cd.subarray(p + 46, p + 46 + nameLen));
    let size32: number = dv.getUint32(p + 24, true);
    let csize: number = dv.getUint32(p + 20, true);
    let offset: number = dv.getUint32(p + 42, true);
    // zip64 extra field (id 1): the 8-byte values, in this order, of whichever fields are 0xffffffff.
    for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen; ) {
      const id = dv.getUint16(x, true);
      const len = dv.getUint16(x + 2, true);
      if (id === 1) {
        let q = x + 4;
        if (size32 === U32_MAX) {
          size32 = u64(dv, q, source);
          q += 8;
        }
        if (csize === U32_MAX) {
          csize = u64(dv, q, source);
          q += 8;
        }
        if (offset === U32_MAX) offset = u64(dv, q, source);
      }
      x += 4 + len;
    }
    entries.set(name, {
      name,
      method: dv.getUint16(p + 10, true),
      size: size32,
      compressedSize: csize,
      localHeaderOffset: offset,
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

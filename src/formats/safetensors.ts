// The safetensors format: u64 little-endian header length, JSON header, raw little-endian data.
// Reader: validates the header against every format rule and reads tensors one at a time through a
// file handle (never the whole file). Writer: what PEFT/transformers write (F32, {"format":"pt"}).

import { type FileHandle, open } from 'node:fs/promises';
import { DTYPE_BYTES, type Dtype, isDtype } from './dtypes.ts';
import { readingFile } from './file-error.ts';
import { elementCount, type HostTensor } from './host-tensor.ts';
import { excessiveNesting } from './json-depth.ts';
import { readExactly, readFloat32 } from './tensor-bytes.ts';

/** A valid header nests three levels: the header, a tensor's entry, its shape or offsets list. */
const MAX_HEADER_DEPTH = 3;
/** The largest header the reference implementation accepts. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Byte range [begin, end) relative to the start of the data buffer. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** In data order (ascending offsets), which is the cheapest order to read them in. */
  readonly entries: readonly SafetensorsEntry[];
  readonly metadata: Readonly<Record<string, string>> | null;
  /** File offset of the data buffer: 8 + header length. */
  readonly dataStart: number;
}

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
}

function parseEntry(name: string, v: unknown, source: string): SafetensorsEntry {
  const bad = (what: string): never => {
    throw new SafetensorsError(`${source}: tensor "${name}": ${what}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('header entry is not an object');
  const e = v as Record<string, unknown>;
  const { dtype, shape, data_offsets: offsets } = e;
  if (typeof dtype !== 'string' || !isDtype(dtype)) {
    bad(
      `dtype ${JSON.stringify(dtype)} is not supported (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`,
    );
  }
  const isIndex = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
  if (!Array.isArray(shape) || !shape.every(isIndex)) bad('"shape" must be a list of non-negative integers');
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
    bad('"data_offsets" must be [begin, end] byte offsets');
  }
  const [begin, end] = offsets as [number, number];
  const d = dtype as Dtype;
  const want = elementCount(shape as number[]) * DTYPE_BYTES[d];
  if (end < begin || end - begin !== want) {
    bad(
      `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${d} ${JSON.stringify(shape)} needs ${want}`,
    );
  }
  return { name, dtype: d, shape: shape as number[], begin, end };
}

/** Validates a header's JSON bytes; `dataBytes` is the size of the data buffer that follows it. */
export function parseSafetensorsHeader(
  json: Uint8Array,
  dataBytes: number,
  source: string,
): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    throw new SafetensorsError(`${source}: header is not valid UTF-8`);
  }
  if (!text.startsWith('{')) throw new SafetensorsError(`${source}: header must start with "{"`);
  const deep = excessiveNesting(text, MAX_HEADER_DEPTH);
  if (deep !== null) {
    throw new SafetensorsError(
      `${source}: header nests deeper than ${MAX_HEADER_DEPTH} levels at character ${deep.offset} (a header is an object of tensor objects with shape lists)`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`${source}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SafetensorsError(`${source}: header must be a JSON object`);
  }
  let metadata: Record<string, string> | null = null;
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      const ok = typeof v === 'object' && v !== null && !Array.isArray(v);
      if (!ok || !Object.values(v).every((s) => typeof s === 'string')) {
        throw new SafetensorsError(`${source}: "__metadata__" must map strings to strings`);
      }
      metadata = v as Record<string, string>;
    } else {
      entries.push(parseEntry(name, v, source));
    }
  }
  // The data buffer must be covered exactly: no holes, no overlaps, nothing after the last tensor.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.begin !== at) {
      const what = e.begin < at ? 'overlaps the previous tensor' : `leaves a hole at byte ${at}`;
      throw new SafetensorsError(
        `${source}: tensor "${e.name}" ${what} (data_offsets [${e.begin}, ${e.end}])`,
      );
    }
    at = e.end;
  }
  if (at !== dataBytes) {
    throw new SafetensorsError(`${source}: tensors cover ${at} data bytes but the file holds ${dataBytes}`);
  }
  return { entries, metadata, dataStart: 8 + json.length };
}

/** An open safetensors file; read tensors one at a time, then close(). */
export class SafetensorsReader {
  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
    private readonly fh: FileHandle,
  ) {}

  static open(path: string): Promise<SafetensorsReader> {
    return readingFile(path, () => SafetensorsReader.openNamed(path));
  }

  private static async openNamed(path: string): Promise<SafetensorsReader> {
    const fh = await open(path, 'r');
    try {
      const size = (await fh.stat()).size;
      if (size < 8) throw new SafetensorsError(`${path}: ${size} bytes is too short for a safetensors file`);
      const lenBytes = new Uint8Array(8);
      await readExactly(fh, lenBytes, 0, path);
      const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(`${path}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      }
      if (8n + n > BigInt(size)) {
        throw new SafetensorsError(`${path}: header length ${n} runs past the end of the ${size}-byte file`);
      }
      const json = new Uint8Array(Number(n));
      await readExactly(fh, json, 8, path);
      return new SafetensorsReader(path, parseSafetensorsHeader(json, size - 8 - json.length, path), fh);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  entry(name: string): SafetensorsEntry {
    const e = this.header.entries.find((x) => x.name === name);
    if (!e) throw new SafetensorsError(`${this.path}: no tensor named "${name}"`);
    return e;
  }

  read(entry: SafetensorsEntry): Promise<HostTensor> {
    return readingFile(this.path, async () => {
      const count = elementCount(entry.shape);
      const data = await readFloat32(
        this.fh,
        this.header.dataStart + entry.begin,
        entry.dtype,
        count,
        this.path,
      );
      return { name: entry.name, shape: entry.shape, data };
    });
  }

  async *tensors(): AsyncGenerator<HostTensor> {
    for (const e of this.header.entries) yield await this.read(e);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

const utf8Compare = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * The header bytes the reference writer produces for float32 tensors: `__metadata__` first, tensors in
 * name order (all share one dtype), compact JSON, space-padded to a multiple of 8. Returns the length
 * prefix + header, and the tensors in data order.
 */
export function encodeSafetensorsHeader(
  tensors: readonly HostTensor[],
  metadata: Readonly<Record<string, string>> | null,
): { readonly prefix: Uint8Array; readonly ordered: readonly HostTensor[] } {
  const ordered = [...tensors].sort((a, b) => utf8Compare(a.name, b.name));
  // Built as text, not as a JS object: objects put integer-like keys first, which would reorder names.
  const parts: string[] = [];
  if (metadata) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let at = 0;
  let previous: string | null = null;
  for (const t of ordered) {
    if (t.name === previous) throw new SafetensorsError(`duplicate tensor name "${t.name}"`);
    previous = t.name;
    if (t.data.length !== elementCount(t.shape)) {
      throw new SafetensorsError(
        `tensor "${t.name}": ${t.data.length} values for shape ${JSON.stringify(t.shape)}`,
      );
    }
    const info = { dtype: 'F32', shape: t.shape, data_offsets: [at, at + t.data.length * 4] };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(info)}`);
    at += t.data.length * 4;
  }
  const json = Buffer.from(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const prefix = Buffer.alloc(8 + padded, 0x20);
  prefix.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(prefix, 8);
  return { prefix, ordered };
}

/** Writes float32 tensors as safetensors (PEFT writes metadata {"format": "pt"}), fsynced. */
export async function writeSafetensors(
  path: string,
  tensors: readonly HostTensor[],
  metadata: Readonly<Record<string, string>> | null = { format: 'pt' },
): Promise<void> {
  const { prefix, ordered } = encodeSafetensorsHeader(tensors, metadata);
  const fh = await open(path, 'w');
  try {
    await fh.write(prefix);
    for (const t of ordered)
      await fh.write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    await fh.sync();
  } finally {
    await fh.close();
  }
}

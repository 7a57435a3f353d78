// Writes a synthetic MPT-shaped checkpoint for the loading benchmark, streamed to disk tensor by
// tensor: safetensors or torch.save-style .bin (stored zip + protocol-2 pickle), f32 or bf16, sharded.
import { once } from 'node:events';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

export interface SyntheticTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

export type StoredDtype = 'F32' | 'BF16';

/** MPT's state-dict names and shapes for a given size (no lm_head: it is tied). */
export function mptTensors(d: number, layers: number, vocab: number): SyntheticTensor[] {
  const t: SyntheticTensor[] = [{ name: 'transformer.wte.weight', shape: [vocab, d] }];
  for (let i = 0; i < layers; i++) {
    const p = `transformer.blocks.${i}`;
    t.push(
      { name: `${p}.norm_1.weight`, shape: [d] },
      { name: `${p}.attn.Wqkv.weight`, shape: [3 * d, d] },
      { name: `${p}.attn.out_proj.weight`, shape: [d, d] },
      { name: `${p}.norm_2.weight`, shape: [d] },
      { name: `${p}.ffn.up_proj.weight`, shape: [4 * d, d] },
      { name: `${p}.ffn.down_proj.weight`, shape: [d, 4 * d] },
    );
  }
  t.push({ name: 'transformer.norm_f.weight', shape: [d] });
  return t;
}

const count = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const bytesOf = (t: SyntheticTensor, dt: StoredDtype) => count(t.shape) * (dt === 'F32' ? 4 : 2);

/** Deterministic pseudo-random contents (xorshift32, uniform in ±0.05), produced in chunks so the
 * writer never holds a whole tensor; bf16 is the top half of each float32, as torch truncates. */
function* chunks(t: SyntheticTensor, dt: StoredDtype, seed: number): Generator<Buffer> {
  const n = count(t.shape);
  const per = 1 << 20;
  let x = seed >>> 0 || 1;
  const f = new Float32Array(per);
  const bits = new Uint32Array(f.buffer);
  for (let at = 0; at < n; at += per) {
    const m = Math.min(per, n - at);
    for (let i = 0; i < m; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      f[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 0.1;
    }
    if (dt === 'F32') {
      yield Buffer.from(f.slice(0, m).buffer);
    } else {
      const h = new Uint16Array(m);
      for (let i = 0; i < m; i++) h[i] = (bits[i] as number) >>> 16;
      yield Buffer.from(h.buffer);
    }
  }
}

async function writeAll(path: string, parts: Iterable<Buffer>): Promise<void> {
  const ws = createWriteStream(path);
  for (const p of parts) if (!ws.write(p)) await once(ws, 'drain');
  ws.end();
  await once(ws, 'finish');
}

function* safetensorsBytes(tensors: readonly SyntheticTensor[], dt: StoredDtype): Generator<Buffer> {
  let at = 0;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  for (const t of tensors) {
    header[t.name] = { dtype: dt, shape: t.shape, data_offsets: [at, at + bytesOf(t, dt)] };
    at += bytesOf(t, dt);
  }
  let json = JSON.stringify(header);
  json = json.padEnd(Math.ceil(json.length / 8) * 8, ' ');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  yield Buffer.concat([len, Buffer.from(json)]);
  for (const [i, t] of tensors.entries()) yield* chunks(t, dt, i + 1);
}

/** The data.pkl torch.save writes for a plain dict of contiguous tensors, storage key = index. */
function statePickle(tensors: readonly SyntheticTensor[], dt: StoredDtype): Buffer {
  const out: Buffer[] = [Buffer.from([0x80, 0x02, 0x7d, 0x28])]; // PROTO 2, EMPTY_DICT, MARK
  const uni = (s: string) => {
    const b = Buffer.from(s);
    const l = Buffer.alloc(5);
    l[0] = 0x58;
    l.writeUInt32LE(b.length, 1);
    return Buffer.concat([l, b]);
  };
  const int = (n: number) => {
    const b = Buffer.alloc(5);
    b[0] = 0x4a;
    b.writeInt32LE(n, 1);
    return b;
  };
  const tuple = (xs: readonly number[]) =>
    Buffer.concat([Buffer.from('('), ...xs.map(int), Buffer.from('t')]);
  const storage = dt === 'F32' ? 'FloatStorage' : 'BFloat16Storage';
  tensors.forEach((t, i) => {
    const stride = t.shape.map((_, d) => count(t.shape.slice(d + 1)));
    out.push(
      uni(t.name),
      Buffer.from('ctorch._utils\n_rebuild_tensor_v2\n(('),
      uni('storage'),
      Buffer.from(`ctorch\n${storage}\n`),
      uni(String(i)),
      uni('cpu'),
      int(count(t.shape)),
      Buffer.from('tQ'),
      int(0),
      tuple(t.shape),
      tuple(stride),
      Buffer.from([0x89]),
      Buffer.from('ccollections\nOrderedDict\n)RtR'),
    );
  });
  out.push(Buffer.from('u.'));
  return Buffer.concat(out);
}

function localHeader(name: string, size: number, crc: number): Buffer {
  const n = Buffer.from(name);
  const h = Buffer.alloc(30);
  h.writeUInt32LE(0x04034b50, 0);
  h.writeUInt16LE(20, 4);
  h.writeUInt32LE(crc >>> 0, 14);
  h.writeUInt32LE(size, 18);
  h.writeUInt32LE(size, 22);
  h.writeUInt16LE(n.length, 26);
  return Buffer.concat([h, n]);
}

const ZIP32_MAX = 0xffffffff;

/** Offsets past 4 GiB go in a zip64 extra field (id 1), as torch.save writes multi-GB shards. */
function centralHeader(name: string, size: number, crc: number, offset: number): Buffer {
  const n = Buffer.from(name);
  const big = offset >= ZIP32_MAX;
  const extra = Buffer.alloc(big ? 12 : 0);
  if (big) {
    extra.writeUInt16LE(1, 0);
    extra.writeUInt16LE(8, 2);
    extra.writeBigUInt64LE(BigInt(offset), 4);
  }
  const h = Buffer.alloc(46);
  h.writeUInt32LE(0x02014b50, 0);
  h.writeUInt16LE(20, 4);
  h.writeUInt16LE(20, 6);
  h.writeUInt32LE(crc >>> 0, 16);
  h.writeUInt32LE(size, 20);
  h.writeUInt32LE(size, 24);
  h.writeUInt16LE(n.length, 28);
  h.writeUInt16LE(extra.length, 30);
  h.writeUInt32LE(big ? ZIP32_MAX : offset, 42);
  return Buffer.concat([h, n, extra]);
}

function* binBytes(tensors: readonly SyntheticTensor[], dt: StoredDtype, archive: string): Generator<Buffer> {
  const central: Buffer[] = [];
  let at = 0;
  const entry = function* (name: string, size: number, crc: number, data: Iterable<Buffer>) {
    const h = localHeader(name, size, crc);
    central.push(centralHeader(name, size, crc, at));
    yield h;
    yield* data;
    at += h.length + size;
  };
  const pkl = statePickle(tensors, dt);
  yield* entry(`${archive}/data.pkl`, pkl.length, crc32(pkl), [pkl]);
  yield* entry(`${archive}/byteorder`, 6, crc32('little'), [Buffer.from('little')]);
  yield* entry(`${archive}/version`, 2, crc32('3\n'), [Buffer.from('3\n')]);
  for (const [i, t] of tensors.entries()) {
    let crc = 0;
    for (const c of chunks(t, dt, i + 1)) crc = crc32(c, crc);
    yield* entry(`${archive}/data/${i}`, bytesOf(t, dt), crc, chunks(t, dt, i + 1));
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(central.length, 8);
  end.writeUInt16LE(central.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(Math.min(at, ZIP32_MAX), 16);
  yield cd;
  if (at >= ZIP32_MAX) {
    // zip64 end of central directory record + locator, before the classic end record.
    const z = Buffer.alloc(56);
    z.writeUInt32LE(0x06064b50, 0);
    z.writeBigUInt64LE(44n, 4);
    z.writeUInt16LE(45, 12);
    z.writeUInt16LE(45, 14);
    z.writeBigUInt64LE(BigInt(central.length), 24);
    z.writeBigUInt64LE(BigInt(central.length), 32);
    z.writeBigUInt64LE(BigInt(cd.length), 40);
    z.writeBigUInt64LE(BigInt(at), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(at + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    yield z;
    yield loc;
  }
  yield end;
}

/** Writes config.json + `shards` weight files + index into `dir`; returns the bytes of weights written. */
export async function writeSyntheticCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  tensors: readonly SyntheticTensor[],
  format: 'safetensors' | 'bin',
  dt: StoredDtype,
  shards: number,
): Promise<number> {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const per = Math.ceil(tensors.length / shards);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const part = tensors.slice(s * per, (s + 1) * per);
    const stem = format === 'safetensors' ? 'model' : 'pytorch_model';
    const ext = format === 'safetensors' ? 'safetensors' : 'bin';
    const name = `${stem}-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.${ext}`;
    for (const t of part) weightMap[t.name] = name;
    const bytes =
      format === 'safetensors' ? safetensorsBytes(part, dt) : binBytes(part, dt, name.slice(0, -4));
    await writeAll(join(dir, name), bytes);
  }
  const total = tensors.reduce((a, t) => a + bytesOf(t, dt), 0);
  const index = format === 'safetensors' ? 'model.safetensors.index.json' : 'pytorch_model.bin.index.json';
  writeFileSync(
    join(dir, index),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
  );
  return total;
}

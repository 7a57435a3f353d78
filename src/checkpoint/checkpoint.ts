// Opens a checkpoint directory as the Hugging Face Hub ships it: config.json plus weights as
// safetensors or torch .bin, single-file or sharded through an index. Tensors stream one at a time as
// float32, and a cheap fingerprint lets workers check they loaded the same checkpoint as the coordinator.
// What config.json means is the model family's (src/families/checkpoint.ts parses it and calls this).
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dtype } from '../formats/dtypes.ts';
import type { HostTensor } from '../formats/host-tensor.ts';
import { SafetensorsReader } from '../formats/safetensors.ts';
import { TorchBinReader } from '../formats/torch-bin.ts';
import { readIndex, type WeightIndex } from '../formats/weight-index.ts';
import type { ModelConfig } from './architecture.ts';

export type WeightFormat = 'safetensors' | 'bin';

export interface CheckpointTensorInfo {
  readonly name: string;
  readonly shape: readonly number[];
  /** Stored dtype; every tensor is handed out as float32. */
  readonly dtype: Dtype;
  /** Weight file (base name) holding it. */
  readonly file: string;
}

export interface Checkpoint<C extends ModelConfig = ModelConfig> {
  readonly dir: string;
  readonly config: C;
  readonly format: WeightFormat;
  /** Weight files (base names) in the order tensors() reads them. */
  readonly files: readonly string[];
  /** Every tensor, in tensors() order. */
  readonly tensorInfo: readonly CheckpointTensorInfo[];
  /** sha256 (hex) over config.json, the index, and each weight file's name, size, first and last MiB. */
  readonly fingerprint: string;
  /** Float32 tensors one at a time; only one weight file is open at any moment. */
  tensors(): AsyncIterable<HostTensor>;
  readTensor(name: string): Promise<HostTensor>;
}

export interface OpenCheckpointOptions {
  /** Which weights to read when a directory has both; default: safetensors if present. */
  readonly format?: WeightFormat;
}

const LAYOUTS: Readonly<Record<WeightFormat, { readonly index: string; readonly single: string }>> = {
  safetensors: { index: 'model.safetensors.index.json', single: 'model.safetensors' },
  bin: { index: 'pytorch_model.bin.index.json', single: 'pytorch_model.bin' },
};

const exists = (path: string) =>
  stat(path).then(
    (s) => s.isFile(),
    () => false,
  );

async function openWeights(format: WeightFormat, path: string): Promise<SafetensorsReader | TorchBinReader> {
  return format === 'safetensors' ? SafetensorsReader.open(path) : TorchBinReader.open(path);
}

function entriesOf(
  r: SafetensorsReader | TorchBinReader,
): { name: string; shape: readonly number[]; dtype: Dtype }[] {
  if (r instanceof SafetensorsReader) return r.header.entries.map((e) => ({ ...e }));
  return r.entries.map((e) => ({ name: e.name, shape: e.shape, dtype: e.ref.storage.dtype }));
}

async function findWeights(
  dir: string,
  wanted: WeightFormat | undefined,
): Promise<{ format: WeightFormat; index: WeightIndex | null; files: string[] }> {
  const formats: WeightFormat[] = wanted ? [wanted] : ['safetensors', 'bin'];
  for (const format of formats) {
    const { index, single } = LAYOUTS[format];
    if (await exists(join(dir, index))) {
      const idx = await readIndex(join(dir, index));
      return { format, index: idx, files: idx.files };
    }
    if (await exists(join(dir, single))) return { format, index: null, files: [single] };
  }
  const names = formats.flatMap((f) => [LAYOUTS[f].index, LAYOUTS[f].single]).join(', ');
  throw new Error(
    `${dir}: no weights found: expected one of ${names} (with its shard files) beside config.json`,
  );
}

/** sha256 over what identifies a checkpoint without reading all of it (cheap even for 13 GB). */
async function fingerprint(
  dir: string,
  configBytes: Uint8Array,
  indexPath: string | null,
  files: readonly string[],
): Promise<string> {
  const h = createHash('sha256');
  h.update('lora-mpt checkpoint fingerprint v1\n');
  h.update(configBytes);
  if (indexPath) h.update(await readFile(indexPath));
  const edge = 1 << 20;
  for (const f of files) {
    const fh = await open(join(dir, f), 'r');
    try {
      const size = (await fh.stat()).size;
      h.update(`\n${f}\n${size}\n`);
      const head = Buffer.alloc(Math.min(size, edge));
      await fh.read(head, 0, head.length, 0);
      h.update(head);
      if (size > 2 * edge) {
        const tail = Buffer.alloc(edge);
        await fh.read(tail, 0, edge, size - edge);
        h.update(tail);
      } else if (size > edge) {
        const rest = Buffer.alloc(size - edge);
        await fh.read(rest, 0, rest.length, edge);
        h.update(rest);
      }
    } finally {
      await fh.close();
    }
  }
  return h.digest('hex');
}

/** Reads `dir`/config.json as JSON (no weight file is opened); `path` names it in errors. */
export async function readConfigJson(dir: string): Promise<{ json: unknown; bytes: Buffer; path: string }> {
  const configPath = join(dir, 'config.json');
  let bytes: Buffer;
  try {
    bytes = await readFile(configPath);
  } catch {
    throw new Error(
      `${configPath}: not found; a checkpoint directory holds config.json and the weight files`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new Error(`${configPath}: not valid JSON (${(e as Error).message})`);
  }
  return { json, bytes, path: configPath };
}

/** Opens the weights of `dir` for its parsed `config` (whose file's bytes enter the fingerprint);
 * throws naming the file and what is wrong. */
export async function openCheckpointWeights<C extends ModelConfig>(
  dir: string,
  config: C,
  configBytes: Uint8Array,
  options: OpenCheckpointOptions = {},
): Promise<Checkpoint<C>> {
  const { format, index, files } = await findWeights(dir, options.format);

  // Read every file's table of contents now (headers / pickles: small) to fail early and to know
  // shapes before any data is read.
  const tensorInfo: CheckpointTensorInfo[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    const reader = await openWeights(format, join(dir, file));
    try {
      for (const e of entriesOf(reader)) {
        const other = seen.get(e.name);
        if (other) throw new Error(`${dir}: tensor "${e.name}" is in both ${other} and ${file}`);
        seen.set(e.name, file);
        tensorInfo.push({ name: e.name, shape: e.shape, dtype: e.dtype, file });
      }
    } finally {
      await reader.close();
    }
  }
  if (index) index.check(seen);
  const print = await fingerprint(dir, configBytes, index ? join(dir, LAYOUTS[format].index) : null, files);
  const byName = new Map(tensorInfo.map((t) => [t.name, t]));

  return {
    dir,
    config,
    format,
    files,
    tensorInfo,
    fingerprint: print,
    async *tensors() {
      for (const file of files) {
        const reader = await openWeights(format, join(dir, file));
        try {
          if (reader instanceof SafetensorsReader) yield* reader.tensors();
          else yield* reader.tensors();
        } finally {
          await reader.close();
        }
      }
    },
    async readTensor(name: string) {
      const info = byName.get(name);
      if (!info) throw new Error(`${dir}: the checkpoint has no tensor "${name}"`);
      const reader = await openWeights(format, join(dir, info.file));
      try {
        if (reader instanceof SafetensorsReader) return await reader.read(reader.entry(name));
        const e = reader.entries.find((x) => x.name === name)!;
        return await reader.read(e);
      } finally {
        await reader.close();
      }
    },
  };
}

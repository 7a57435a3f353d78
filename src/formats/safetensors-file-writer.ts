// Writes one safetensors file (float32, bfloat16 or float16; float32 tensors in, rounded on the way
// out) tensor by tensor, so a multi-gigabyte shard never sits in
// memory: the header (every name, shape and byte range) goes first from the plan, then each
// tensor's data in the plan's order as it arrives. safetensors readers accept any data order as
// long as the ranges tile the buffer, which they do here. fsynced on close.
import { type FileHandle, open } from 'node:fs/promises';
import { convertFromFloat32, DTYPE_BYTES, type FloatDtype } from './dtypes.ts';
import { elementCount, type HostTensor } from './host-tensor.ts';
import { SafetensorsError } from './safetensors.ts';

export interface PlannedTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/** Bytes of a tensor of this shape stored as `dtype`. */
export const tensorBytes = (shape: readonly number[], dtype: FloatDtype) =>
  elementCount(shape) * DTYPE_BYTES[dtype];

export class SafetensorsFileWriter {
  private next = 0;

  private constructor(
    private readonly path: string,
    private readonly fh: FileHandle,
    private readonly plan: readonly PlannedTensor[],
    private readonly dtype: FloatDtype,
  ) {}

  static async create(
    path: string,
    plan: readonly PlannedTensor[],
    dtype: FloatDtype = 'F32',
    metadata: Readonly<Record<string, string>> = { format: 'pt' },
  ): Promise<SafetensorsFileWriter> {
    const names = new Set<string>();
    const parts = [`"__metadata__":${JSON.stringify(metadata)}`];
    let at = 0;
    for (const t of plan) {
      if (names.has(t.name)) throw new SafetensorsError(`${path}: tensor "${t.name}" planned twice`);
      names.add(t.name);
      const end = at + tensorBytes(t.shape, dtype);
      parts.push(
        `${JSON.stringify(t.name)}:${JSON.stringify({ dtype, shape: t.shape, data_offsets: [at, end] })}`,
      );
      at = end;
    }
    const json = Buffer.from(`{${parts.join(',')}}`);
    const padded = Math.ceil(json.length / 8) * 8;
    const prefix = Buffer.alloc(8 + padded, 0x20);
    prefix.writeBigUInt64LE(BigInt(padded), 0);
    json.copy(prefix, 8);
    const fh = await open(path, 'w');
    await fh.write(prefix);
    return new SafetensorsFileWriter(path, fh, plan, dtype);
  }

  /** Appends the next planned tensor (float32 values, stored as the file's dtype); its name and shape
   * must be the plan's. */
  async write(t: HostTensor): Promise<void> {
    const want = this.plan[this.next];
    if (want === undefined) throw new SafetensorsError(`${this.path}: "${t.name}" is not in the plan`);
    if (
      want.name !== t.name ||
      want.shape.join(',') !== t.shape.join(',') ||
      t.data.length !== elementCount(t.shape)
    ) {
      throw new SafetensorsError(
        `${this.path}: expected "${want.name}" [${want.shape}] next, got "${t.name}" [${t.shape}] (${t.data.length} values)`,
      );
    }
    await this.fh.write(convertFromFloat32(t.data, this.dtype));
    this.next++;
  }

  /** Fsyncs and closes; throws when planned tensors were never written. */
  async close(): Promise<void> {
    try {
      if (this.next !== this.plan.length) {
        throw new SafetensorsError(
          `${this.path}: ${this.plan.length - this.next} planned tensors were not written`,
        );
      }
      await this.fh.sync();
    } finally {
      await this.fh.close();
    }
  }
}

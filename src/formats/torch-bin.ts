// Reads a torch.save checkpoint (`pytorch_model*.bin`, `adapter_model.bin`): the zip's data.pkl through
// the restricted unpickler, then each tensor's bytes by file offset from its storage entry, one tensor
// at a time, converted to float32.
import { DTYPE_BYTES } from './dtypes.ts';
import { readingFile } from './file-error.ts';
import { elementCount, type HostTensor } from './host-tensor.ts';
import { readFloat32 } from './tensor-bytes.ts';
import { loadTorchPickle, PickleFormatError, type TensorRef } from './torch-pickle.ts';
import { ZipArchive } from './torch-zip.ts';

export interface TorchBinEntry {
  readonly name: string;
  readonly shape: readonly number[];
  readonly ref: TensorRef;
}

function isTensorRef(v: unknown): v is TensorRef {
  return typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor';
}

/** Row-major strides of a shape; dims of size 1 may carry any stride, so callers compare only others. */
function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let want = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== want) return false;
    want *= shape[i]!;
  }
  return true;
}

/** An open .bin checkpoint; `entries` in pickle order; read tensors one at a time, then close(). */
export class TorchBinReader {
  private constructor(
    readonly path: string,
    readonly entries: readonly TorchBinEntry[],
    private readonly zip: ZipArchive,
    private readonly prefix: string,
  ) {}

  static open(path: string): Promise<TorchBinReader> {
    return readingFile(path, () => TorchBinReader.openNamed(path));
  }

  private static async openNamed(path: string): Promise<TorchBinReader> {
    const zip = await ZipArchive.open(path);
    try {
      const pkl = [...zip.entries.keys()].find((n) => n.endsWith('data.pkl') && n.split('/').length === 2);
      if (!pkl) throw new PickleFormatError(`${path}: no <archive>/data.pkl entry; not a torch.save file`);
      const prefix = pkl.slice(0, -'data.pkl'.length);
      const order = zip.entries.get(`${prefix}byteorder`);
      if (order) {
        const text = new TextDecoder().decode(await zip.read(order));
        if (text !== 'little') throw new PickleFormatError(`${path}: byteorder "${text}" is not supported`);
      }
      const root = loadTorchPickle(await zip.read(zip.entry(pkl)), path);
      if (!(root instanceof Map))
        throw new PickleFormatError(`${path}: top-level object is not a state dict`);
      const entries: TorchBinEntry[] = [];
      for (const [name, v] of root) {
        if (typeof name !== 'string' || !isTensorRef(v)) {
          throw new PickleFormatError(
            `${path}: entry ${JSON.stringify(name)} is not a tensor; expected a plain state dict (name → tensor)`,
          );
        }
        entries.push({ name, shape: v.shape, ref: v });
      }
      return new TorchBinReader(path, entries, zip, prefix);
    } catch (e) {
      await zip.close();
      throw e;
    }
  }

  read(entry: TorchBinEntry): Promise<HostTensor> {
    return readingFile(this.path, () => this.readNamed(entry));
  }

  private async readNamed(entry: TorchBinEntry): Promise<HostTensor> {
    const { storage, offset, shape, stride } = entry.ref;
    const where = `${this.path}: tensor "${entry.name}"`;
    const zipEntry = this.zip.entry(`${this.prefix}data/${storage.key}`);
    const size = DTYPE_BYTES[storage.dtype];
    const count = elementCount(shape);
    // Highest element the view touches, to check it stays inside its storage.
    const last = count === 0 ? offset : offset + shape.reduce((s, d, i) => s + (d - 1) * stride[i]!, 0);
    if (last >= storage.numel && count > 0) throw new PickleFormatError(`${where} reaches past its storage`);
    if (zipEntry.size < storage.numel * size)
      throw new PickleFormatError(`${where}: storage entry is too short`);
    const base = await this.zip.dataOffset(zipEntry);
    if (isContiguous(shape, stride)) {
      const data = await readFloat32(this.zip.fh, base + offset * size, storage.dtype, count, where);
      return { name: entry.name, shape, data };
    }
    // A strided view (rare in checkpoints): read the span it covers, then gather row-major.
    const span = await readFloat32(
      this.zip.fh,
      base + offset * size,
      storage.dtype,
      last - offset + 1,
      where,
    );
    const data = new Float32Array(count);
    const index = new Array<number>(shape.length).fill(0);
    for (let i = 0; i < count; i++) {
      let at = 0;
      for (let d = 0; d < shape.length; d++) at += index[d]! * stride[d]!;
      data[i] = span[at]!;
      for (let d = shape.length - 1; d >= 0 && ++index[d]! === shape[d]; d--) index[d] = 0;
    }
    return { name: entry.name, shape, data };
  }

  async *tensors(): AsyncGenerator<HostTensor> {
    for (const e of this.entries) yield await this.read(e);
  }

  close(): Promise<void> {
    return this.zip.close();
  }
}

// Reads one stored tensor's bytes from an open file straight into a fresh Float32Array. Non-f32 data
// goes through a bounded scratch buffer, so loading never holds a second full-size copy of a tensor.
import type { FileHandle } from 'node:fs/promises';
import { convertToFloat32, DTYPE_BYTES, type Dtype } from './dtypes.ts';

const CHUNK_BYTES = 4 << 20;

export async function readExactly(
  fh: FileHandle,
  into: Uint8Array,
  position: number,
  source: string,
): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) {
      throw new Error(
        `${source}: file ends at byte ${position + done}, expected ${into.length - done} more bytes`,
      );
    }
    done += bytesRead;
  }
}

/** Reads `count` elements of `dtype` at byte `position` of `fh`, converted to float32. */
export async function readFloat32(
  fh: FileHandle,
  position: number,
  dtype: Dtype,
  count: number,
  source: string,
): Promise<Float32Array> {
  const out = new Float32Array(count);
  if (dtype === 'F32') {
    await readExactly(fh, new Uint8Array(out.buffer), position, source);
    return out;
  }
  const size = DTYPE_BYTES[dtype];
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / size));
  const scratch = new Uint8Array(Math.min(count, perChunk) * size);
  for (let first = 0; first < count; first += perChunk) {
    const n = Math.min(perChunk, count - first);
    const bytes = scratch.subarray(0, n * size);
    await readExactly(fh, bytes, position + first * size, source);
    convertToFloat32(bytes, dtype, n, out, first);
  }
  return out;
}

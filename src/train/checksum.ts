// A short digest of a float vector's exact bytes: replicas compare it to prove they hold the same
// reduced gradient (or the same weights) bit for bit.
import { createHash } from 'node:crypto';

export function vectorChecksum(v: Float32Array): string {
  return createHash('sha256')
    .update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
    .digest('hex')
    .slice(0, 32);
}

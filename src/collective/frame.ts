// The binary frame every all-reduce message carries: a 44-byte little-endian header naming the
// round (run-id hash, step, generation), the sender, shard and chunk, then the payload, then the tag:
// the sender's Ed25519 signature of header and MAC (64 bytes), and the MAC, keyed BLAKE3 of header
// and payload under the run's frame key (32 bytes; both handed out over authenticated gRPC;
// frame-mac.ts). The MAC
// keeps out whoever lacks the run key; the signature proves which member sent a frame, so a receiver
// can show the coordinator a bad frame as evidence (docs/security.md). Receivers drop frames whose
// header is not their round, so stale traffic is filtered by content too.
import { type KeyObject, sign, timingSafeEqual, verify } from 'node:crypto';
import { frameMac as macOf } from './frame-mac.ts';
import {
  bytesPerElement,
  encodeBf16,
  encodingCode,
  encodingOfCode,
  type GradientEncoding,
} from './gradient-encoding.ts';

export const HEADER_BYTES = 44;
/** The Ed25519 signature of header and MAC (zeros when the sender has no signing key). */
export const SIGNATURE_BYTES = 64;
/** The keyed BLAKE3 of header and payload, the frame's last bytes. */
export const MAC_BYTES = 32;
/** The tag after the payload: signature, then MAC. */
export const TAG_BYTES = SIGNATURE_BYTES + MAC_BYTES;
/** Bytes of a frame besides its payload. */
export const FRAME_OVERHEAD = HEADER_BYTES + TAG_BYTES;
const MAGIC = 0x52414d4c; // "LMAR" on the wire
const VERSION = 4; // 4: keyed BLAKE3 MAC (3: HMAC-SHA256)

export const FrameKind = {
  ready: 1,
  abort: 2,
  shardReduce: 3,
  shardGather: 4,
  ringReduce: 5,
  ringGather: 6,
  // hierarchical.ts: members' parts for their node's lane member, node partials for the atom's
  // owner, the owner's final bytes across nodes, the lane member's final bytes inside its node.
  nodeReduce: 7,
  crossReduce: 8,
  crossGather: 9,
  nodeGather: 10,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];
const KINDS: ReadonlySet<number> = new Set(Object.values(FrameKind));

export interface FrameHeader {
  readonly kind: FrameKind;
  readonly runHash: number;
  readonly step: number;
  readonly generation: number;
  /** Index of the sender in members followed by observers. */
  readonly from: number;
  readonly shard: number;
  readonly chunk: number;
  readonly chunkCount: number;
  /** Element offset of the payload in the whole vector. */
  readonly offset: number;
  /** Element count of the whole vector; peers with another length are a protocol error. */
  readonly totalLength: number;
  /** How the payload's values are encoded (gradient-encoding.ts); default f32. */
  readonly encoding?: GradientEncoding;
}

// Payload floats are copied byte-for-byte, so the wire order is the host order; every platform
// Node runs the trainer on (x86-64, arm64) is little-endian. Refuse to run rather than garble sums.
if (new Uint8Array(new Float32Array([1]).buffer)[3] !== 0x3f) {
  throw new Error('src/collective needs a little-endian host: frames carry float32 in host byte order');
}

/** FNV-1a 32-bit of the run id's UTF-8 bytes: cheap, and enough to tell runs apart in a header. */
export function runHash(runId: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(runId)) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Bytes of the frame that carries `payloadBytes` bytes of payload. */
export const frameBytes = (payloadBytes: number): number => FRAME_OVERHEAD + payloadBytes;

/**
 * Header, payload (float32 elements in the header's encoding, or UTF-8 text for abort) and tag in one
 * buffer. `key`: the run's frame key; without one the MAC proves nothing (tests and benchmarks only).
 * `signer`: the sender's Ed25519 private key; without one the signature is zeros. `into`: a buffer
 * of exactly frameBytes(payload bytes) to write the frame in (every byte is written); default new.
 */
export function encodeFrame(
  h: FrameHeader,
  payload?: Float32Array | Uint8Array,
  key?: Uint8Array,
  into?: Uint8Array,
  signer?: KeyObject,
): Uint8Array {
  const encoding = h.encoding ?? 'f32';
  // Float32 values in another encoding are converted; anything else is copied byte for byte.
  const convert = payload instanceof Float32Array && encoding !== 'f32';
  const payloadBytes = convert ? payload.length * bytesPerElement(encoding) : (payload?.byteLength ?? 0);
  const signedLength = HEADER_BYTES + payloadBytes;
  const out = into ?? new Uint8Array(signedLength + TAG_BYTES);
  if (out.length !== signedLength + TAG_BYTES) {
    throw new RangeError(`frame buffer of ${out.length} bytes for a frame of ${signedLength + TAG_BYTES}`);
  }
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(0, MAGIC, true);
  v.setUint8(4, VERSION);
  v.setUint8(5, h.kind);
  v.setUint16(6, encodingCode(encoding), true);
  const fields = [
    h.runHash,
    h.step,
    h.generation,
    h.from,
    h.shard,
    h.chunk,
    h.chunkCount,
    h.offset,
    h.totalLength,
  ];
  for (const [i, x] of fields.entries()) v.setUint32(8 + 4 * i, x, true);
  if (convert) encodeBf16(payload, out.subarray(HEADER_BYTES, signedLength));
  else if (payload)
    out.set(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), HEADER_BYTES);
  const mac = macOf(key, out.subarray(0, signedLength));
  out.set(mac, signedLength + SIGNATURE_BYTES);
  const signature = out.subarray(signedLength, signedLength + SIGNATURE_BYTES);
  if (signer) signature.set(sign(null, signedBytesOfFrame(out.subarray(0, HEADER_BYTES), mac), signer));
  else signature.fill(0);
  return out;
}

/** What a frame's signature covers: its header and its MAC (which covers header and payload). */
export const signedBytes = (header: Uint8Array, mac: Uint8Array): Buffer => Buffer.concat([header, mac]);

// sign() and verify() are synchronous, so one scratch buffer serves every frame of the process: no
// allocation per frame for the 76 bytes they read.
const signedScratch = Buffer.alloc(HEADER_BYTES + MAC_BYTES);
function signedBytesOfFrame(header: Uint8Array, mac: Uint8Array): Buffer {
  signedScratch.set(header, 0);
  signedScratch.set(mac, HEADER_BYTES);
  return signedScratch;
}

/** Whether `msg`'s MAC is the keyed BLAKE3 of its header and payload under `key` (constant time). */
export function verifyFrame(msg: Uint8Array, key: Uint8Array | undefined): boolean {
  if (msg.length < FRAME_OVERHEAD) return false;
  const signedLength = msg.length - TAG_BYTES;
  return timingSafeEqual(macOf(key, msg.subarray(0, signedLength)), msg.subarray(msg.length - MAC_BYTES));
}

/** Whether `msg` is signed by the holder of `publicKey` (its claimed sender's Ed25519 key). */
export function verifyFrameSignature(msg: Uint8Array, publicKey: KeyObject): boolean {
  if (msg.length < FRAME_OVERHEAD) return false;
  const { header, mac, signature } = frameSignedParts(msg);
  return verify(null, signedBytesOfFrame(header, mac), publicKey, signature);
}

/** Header, MAC and signature of `msg` (views): with the payload, what proves who sent it. */
export function frameSignedParts(msg: Uint8Array): {
  header: Uint8Array;
  mac: Uint8Array;
  signature: Uint8Array;
} {
  const end = msg.length;
  return {
    header: msg.subarray(0, HEADER_BYTES),
    mac: msg.subarray(end - MAC_BYTES),
    signature: msg.subarray(end - TAG_BYTES, end - MAC_BYTES),
  };
}

/** The MAC a frame of `header` and `payload` carries under `key` (for checking evidence). */
export const frameMac = (key: Uint8Array | undefined, header: Uint8Array, payload: Uint8Array): Buffer =>
  macOf(key, header, payload);

/** The frame's tag (identifies its exact bytes: two copies of a chunk must have the same one). */
export function frameTag(msg: Uint8Array): Uint8Array {
  return msg.subarray(msg.length - TAG_BYTES);
}

/** The header of `msg`, or undefined when it is not a frame of this protocol version. */
export function decodeFrame(msg: Uint8Array): FrameHeader | undefined {
  if (msg.length < FRAME_OVERHEAD) return undefined;
  const v = new DataView(msg.buffer, msg.byteOffset, HEADER_BYTES);
  if (v.getUint32(0, true) !== MAGIC || v.getUint8(4) !== VERSION) return undefined;
  const kind = v.getUint8(5);
  const encoding = encodingOfCode(v.getUint16(6, true));
  if (!KINDS.has(kind) || encoding === undefined) return undefined;
  const u = (at: number) => v.getUint32(at, true);
  return {
    kind: kind as FrameKind,
    runHash: u(8),
    step: u(12),
    generation: u(16),
    from: u(20),
    shard: u(24),
    chunk: u(28),
    chunkCount: u(32),
    offset: u(36),
    totalLength: u(40),
    encoding,
  };
}

/** The payload bytes between header and tag (a view, not a copy). */
export function framePayload(msg: Uint8Array): Uint8Array {
  return msg.subarray(HEADER_BYTES, msg.length - TAG_BYTES);
}

/** Index of the first NaN or ±Infinity in a payload's floats, or -1 (float-sum.ts). */
export { firstNonFinite } from './float-sum.ts';

// Evidence that a member sent a bad frame, as its receiver hands it to the coordinator: the frame's
// header, MAC and signature, which only the claimed sender's signing key can make, plus what the
// offence needs: the payload of a non-finite frame (the MAC binds it to the signed header; keyed BLAKE3
// is collision resistant even for holders of the run key), or the second signed copy of a chunk.
// checkFrameEvidence is pure: the coordinator runs it with the run key and the members' public keys,
// so a member cannot accuse another with a frame that member did not sign.
import type { KeyObject } from 'node:crypto';
import { verify } from 'node:crypto';
import {
  decodeFrame,
  type FrameHeader,
  firstNonFinite,
  frameMac,
  frameSignedParts,
  signedBytes,
} from './frame.ts';
import { decodeBf16 } from './gradient-encoding.ts';

export type EvidenceReason = 'nonfinite' | 'conflict' | 'layout';

/** One signed frame's proof of origin: what its sender's signature covers, and the signature. */
export interface SignedFrame {
  readonly header: Uint8Array; // 44 bytes
  readonly mac: Uint8Array; // 32 bytes
  readonly signature: Uint8Array; // 64 bytes
}

export interface FrameEvidence {
  readonly reason: EvidenceReason;
  readonly frame: SignedFrame;
  /** nonfinite: the frame's payload. */
  readonly payload?: Uint8Array;
  /** conflict: the other signed copy of the same chunk. */
  readonly conflicting?: SignedFrame;
}

/** Copies of `msg`'s signed parts (the message buffer is the NATS client's). */
export function signedFrameOf(msg: Uint8Array): SignedFrame {
  const { header, mac, signature } = frameSignedParts(msg);
  // One allocation for the three (kept for every first copy of a chunk in a round).
  const kept = new Uint8Array(header.length + mac.length + signature.length);
  kept.set(header, 0);
  kept.set(mac, header.length);
  kept.set(signature, header.length + mac.length);
  const at = (from: number, length: number) => kept.subarray(from, from + length);
  return {
    header: at(0, header.length),
    mac: at(header.length, mac.length),
    signature: at(header.length + mac.length, signature.length),
  };
}

export type EvidenceVerdict =
  | { readonly proven: true; readonly header: FrameHeader }
  | { readonly proven: false; readonly why: string };

/**
 * Whether `e` proves an offence by the sender its header names. `publicKeyOf(from)`: the Ed25519 key
 * of participant `from` of that round (undefined: not a participant); `frameKey`: the run's key.
 * The caller still checks that the header's run, step and generation are the round it judges.
 */
export function checkFrameEvidence(
  e: FrameEvidence,
  frameKey: Uint8Array | undefined,
  publicKeyOf: (from: number) => KeyObject | undefined,
): EvidenceVerdict {
  const signed = (f: SignedFrame, what: string): FrameHeader | string => {
    const h = decodeFrame(Buffer.concat([f.header, f.mac, new Uint8Array(64)]));
    if (!h || f.header.length !== 44 || f.mac.length !== 32 || f.signature.length !== 64) {
      return `${what}: not a frame header, MAC and signature of this protocol version`;
    }
    const key = publicKeyOf(h.from);
    if (!key) return `${what}: sender index ${h.from} is not a participant of the round`;
    if (!verify(null, signedBytes(f.header, f.mac), key, f.signature)) {
      return `${what}: the signature is not sender ${h.from}'s`;
    }
    return h;
  };
  const h = signed(e.frame, 'frame');
  if (typeof h === 'string') return { proven: false, why: h };
  if (e.reason === 'nonfinite') {
    if (!e.payload) return { proven: false, why: 'nonfinite evidence without the payload' };
    if (!frameMac(frameKey, e.frame.header, e.payload).equals(e.frame.mac)) {
      return { proven: false, why: 'the payload is not the one the signed MAC covers' };
    }
    const values = new Float32Array(e.payload.length / (h.encoding === 'bf16' ? 2 : 4));
    if (h.encoding === 'bf16') decodeBf16(e.payload, values);
    else new Uint8Array(values.buffer).set(e.payload.subarray(0, values.length * 4));
    if (firstNonFinite(values) < 0) return { proven: false, why: 'every value of the payload is finite' };
    return { proven: true, header: h };
  }
  if (e.reason === 'conflict') {
    if (!e.conflicting) return { proven: false, why: 'conflict evidence without the second copy' };
    const g = signed(e.conflicting, 'second copy');
    if (typeof g === 'string') return { proven: false, why: g };
    const same = (['kind', 'runHash', 'step', 'generation', 'from', 'shard', 'chunk'] as const).every(
      (k) => h[k] === g[k],
    );
    if (!same) return { proven: false, why: 'the two frames are not copies of the same chunk' };
    if (Buffer.compare(e.frame.mac, e.conflicting.mac) === 0) {
      return { proven: false, why: 'the two copies carry the same bytes' };
    }
    return { proven: true, header: h };
  }
  // layout: the signed header itself is the offence (another vector length, chunking or encoding);
  // the coordinator compares it with the round it started.
  return { proven: true, header: h };
}

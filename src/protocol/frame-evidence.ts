// Per-worker frame signing on the wire (docs/security.md, "Attributable frames"): raw Ed25519 public
// keys as Hello and ReduceStart carry them, and the evidence a ReduceResult's blame comes with, in
// the collective's terms (src/collective/evidence.ts: checkFrameEvidence proves it).
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { FrameEvidence, SignedFrame } from '../collective/evidence.ts';
import type { FrameEvidence as WireFrameEvidence } from '../proto/lora_mpt/v1/coordinator.ts';

export type { WireFrameEvidence };

const ED25519_BYTES = 32;
// An Ed25519 SubjectPublicKeyInfo in DER is this 12-byte prefix followed by the 32 raw key bytes.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** The 32 raw bytes of an Ed25519 public key, as Hello and ReduceStart carry it. */
export function rawPublicKey(key: KeyObject): Uint8Array {
  const der = key.export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - ED25519_BYTES));
}

/** The Ed25519 public key of 32 raw bytes; `what` names the field for the error. */
export function publicKeyFromRaw(raw: Uint8Array, what: string): KeyObject {
  if (raw.length !== ED25519_BYTES) {
    throw new Error(`${what}: an Ed25519 public key is ${ED25519_BYTES} raw bytes, got ${raw.length}`);
  }
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

const EMPTY = Buffer.alloc(0);
/** A Buffer over the same bytes (the generated wire types want Buffers). */
export const wireBytes = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const REASONS: readonly string[] = ['nonfinite', 'conflict', 'layout'];

export function evidenceToWire(e: FrameEvidence): WireFrameEvidence {
  return {
    reason: e.reason,
    header: wireBytes(e.frame.header),
    mac: wireBytes(e.frame.mac),
    signature: wireBytes(e.frame.signature),
    payload: e.payload ? wireBytes(e.payload) : EMPTY,
    conflictingHeader: e.conflicting ? wireBytes(e.conflicting.header) : EMPTY,
    conflictingMac: e.conflicting ? wireBytes(e.conflicting.mac) : EMPTY,
    conflictingSignature: e.conflicting ? wireBytes(e.conflicting.signature) : EMPTY,
  };
}

/** The evidence of a ReduceResult, or why it is not evidence (a peer's bytes: checked, never trusted). */
export function evidenceFromWire(w: WireFrameEvidence): FrameEvidence | string {
  if (!REASONS.includes(w.reason))
    return `evidence reason ${JSON.stringify(w.reason.slice(0, 32))} is unknown`;
  const reason = w.reason as FrameEvidence['reason'];
  const frame: SignedFrame = { header: w.header, mac: w.mac, signature: w.signature };
  if (reason === 'nonfinite') return { reason, frame, payload: w.payload };
  if (reason === 'conflict') {
    const conflicting = {
      header: w.conflictingHeader,
      mac: w.conflictingMac,
      signature: w.conflictingSignature,
    };
    return { reason, frame, conflicting };
  }
  return { reason, frame };
}

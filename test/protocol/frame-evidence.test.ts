import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { checkFrameEvidence, type FrameEvidence, signedFrameOf } from '../../src/collective/evidence.ts';
import { encodeFrame, FrameKind, framePayload, runHash } from '../../src/collective/frame.ts';
import { WorkerMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { evidenceFromWire, publicKeyFromRaw, rawPublicKey } from '../../src/protocol/frame-evidence.ts';
import { frameEvidenceMessage, readyMessage } from '../../src/protocol/from-worker.ts';
import { frameKeyRefusal } from '../../src/protocol/handshake.ts';

// Per-worker frame signing on the gRPC wire: the worker's public key in its Ready, and the evidence
// a member sends before a failed ReduceResult, which the coordinator can check after the codec.

const keys = generateKeyPairSync('ed25519');
const RUN_KEY = randomBytes(32);

describe('frame signing keys on the wire', () => {
  it('carries a raw 32-byte Ed25519 public key that verifies what the private key signed', () => {
    const raw = rawPublicKey(keys.publicKey);
    assert.equal(raw.length, 32);
    const ready = WorkerMessage.decode(WorkerMessage.encode(readyMessage('fp', raw)).finish());
    assert.equal(ready.body?.$case, 'ready');
    const back = publicKeyFromRaw(ready.body.value.framePublicKey!, 'Ready frame_public_key');
    const data = Buffer.from('header and mac');
    assert.ok(verify(null, data, back, sign(null, data, keys.privateKey)));
    assert.throws(
      () => publicKeyFromRaw(raw.subarray(1), 'Ready frame_public_key'),
      /Ready frame_public_key: .* 32 raw bytes, got 31/,
    );
  });

  it('refuses a Ready without a key when frames are authenticated, and a key that is not 32 bytes', () => {
    assert.match(String(frameKeyRefusal(undefined, true)), /32-byte Ed25519 public key \(got none\)/);
    assert.match(String(frameKeyRefusal(new Uint8Array(31), false)), /got 31/);
    assert.equal(frameKeyRefusal(new Uint8Array(32), true), undefined);
    assert.equal(frameKeyRefusal(undefined, false), undefined);
  });
});

describe('frame evidence on the wire', () => {
  const round = { runId: 'r', step: 3, generation: 9 };
  const frame = encodeFrame(
    {
      kind: FrameKind.shardReduce,
      runHash: runHash(round.runId),
      step: round.step,
      generation: round.generation,
      from: 1,
      shard: 0,
      chunk: 0,
      chunkCount: 1,
      offset: 0,
      totalLength: 4,
    },
    new Float32Array([1, Number.NaN]),
    RUN_KEY,
    undefined,
    keys.privateKey,
  );
  const evidence: FrameEvidence = {
    reason: 'nonfinite',
    frame: signedFrameOf(frame),
    payload: framePayload(frame).slice(),
  };
  const publicKeyOf = (i: number) => (i === 1 ? keys.publicKey : undefined);

  /** The evidence as the coordinator reads it from the stream. */
  function received(e: FrameEvidence): FrameEvidence {
    const msg = WorkerMessage.decode(WorkerMessage.encode(frameEvidenceMessage(round, 'm1', e)).finish());
    assert.equal(msg.body?.$case, 'evidence');
    assert.equal(msg.body.value.accused, 'm1');
    assert.equal(msg.body.value.generation, 9);
    const back = evidenceFromWire(msg.body.value.evidence!);
    assert.ok(typeof back !== 'string', String(back));
    return back;
  }

  it('proves, after the codec, that sender 1 signed the frame holding NaN', () => {
    const verdict = checkFrameEvidence(received(evidence), RUN_KEY, publicKeyOf);
    assert.ok(verdict.proven, verdict.proven ? '' : verdict.why);
    assert.deepEqual([verdict.header.from, verdict.header.step, verdict.header.generation], [1, 3, 9]);
  });

  it('proves nothing once a signature byte is changed on the way', () => {
    const signature = evidence.frame.signature.slice();
    signature[5]! ^= 1;
    const verdict = checkFrameEvidence(
      received({ ...evidence, frame: { ...evidence.frame, signature } }),
      RUN_KEY,
      publicKeyOf,
    );
    assert.equal(verdict.proven, false);
  });

  it('refuses a reason it does not know, naming it', () => {
    const wire = WorkerMessage.decode(
      WorkerMessage.encode(frameEvidenceMessage(round, 'm1', evidence)).finish(),
    );
    assert.ok(wire.body?.$case === 'evidence' && wire.body.value.evidence);
    assert.match(
      String(evidenceFromWire({ ...wire.body.value.evidence, reason: 'vibes' })),
      /"vibes" is unknown/,
    );
  });
});

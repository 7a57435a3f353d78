import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { type FrameEvidence, signedFrameOf } from '../../src/collective/evidence.ts';
import {
  encodeFrame,
  type FrameHeader,
  FrameKind,
  framePayload,
  runHash,
} from '../../src/collective/frame.ts';
import { Accusations, type FrameRules } from '../../src/coordinator/accusations.ts';
import { rawPublicKey } from '../../src/protocol/frame-evidence.ts';

// A blame that comes with a frame its accused signed (docs/security.md, "Blame only with evidence"):
// the frames are made as a member makes them (encodeFrame with the run key and the member's own
// Ed25519 key), and the coordinator's keys are the raw bytes ReduceStart carries.
const RULES: FrameRules = { runId: 'run-e', frameKey: randomBytes(32), encoding: 'f32', length: 64 };
const MEMBERS = ['a', 'b', 'x'];
const pairs = [...MEMBERS, 'coordinator'].map(() => generateKeyPairSync('ed25519'));
const KEYS = pairs.map((p) => rawPublicKey(p.publicKey));
const STEP = 3;
const GEN = 41;

function header(over: Partial<FrameHeader> = {}): FrameHeader {
  return {
    kind: FrameKind.shardReduce,
    runHash: runHash(RULES.runId),
    step: STEP,
    generation: GEN,
    from: 2, // x
    shard: 0,
    chunk: 0,
    chunkCount: 1,
    offset: 0,
    totalLength: RULES.length,
    ...over,
  };
}

/** x's frame of 16 values, one of them `bad`, signed by `signer` (default x's own key). */
function frame(bad: number, over: Partial<FrameHeader> = {}, signer: KeyObject = pairs[2]!.privateKey) {
  const values = new Float32Array(16).fill(0.25);
  values[7] = bad;
  return encodeFrame(header(over), values, RULES.frameKey, undefined, signer);
}

const nonfinite = (msg: Uint8Array): FrameEvidence => ({
  reason: 'nonfinite',
  frame: signedFrameOf(msg),
  payload: framePayload(msg).slice(),
});

function court(rules?: FrameRules) {
  const a = new Accusations(rules);
  a.opened({ step: STEP, generation: GEN, members: MEMBERS, participantKeys: KEYS });
  a.opened({ step: STEP, generation: GEN + 1, members: MEMBERS, participantKeys: KEYS });
  return a;
}

describe('a blame with signed-frame evidence', () => {
  it('is proven when the accused signed a non-finite frame of the blamed round', () => {
    const v = court(RULES).judge('a', 'x', STEP, GEN, nonfinite(frame(Number.NaN)));
    assert.equal(v.kind, 'proven');
    assert.match(v.kind === 'proven' ? v.why : '', /non-finite values \(shard 0 chunk 0\)/);
  });

  it('costs the accuser nothing: proven blames are not counted against it', () => {
    const a = court(RULES);
    for (let i = 0; i < 5; i++)
      assert.equal(a.judge('a', 'x', STEP, GEN, nonfinite(frame(Number.POSITIVE_INFINITY))).kind, 'proven');
    // Its first blame without evidence is still its first unverifiable one.
    const v = a.judge('a', 'x', STEP, GEN);
    assert.deepEqual(v, { kind: 'unverifiable', count: 1, penalise: false });
  });

  it('proves nothing for another round, run or layout: judged as a word alone', () => {
    const cases: [string, Uint8Array][] = [
      ['another generation of the step', frame(Number.NaN, { generation: GEN + 1 })],
      ['another step', frame(Number.NaN, { step: STEP + 1 })],
      ['another run', frame(Number.NaN, { runHash: runHash('other-run') })],
      ['another vector length', frame(Number.NaN, { totalLength: RULES.length + 16 })],
    ];
    for (const [what, msg] of cases) {
      const a = court(RULES);
      assert.equal(a.judge('a', 'x', STEP, GEN, nonfinite(msg)).kind, 'unverifiable', what);
      assert.match(
        a.proof({ step: STEP, generation: GEN, members: MEMBERS, participantKeys: KEYS }, 'x', nonfinite(msg))
          .text,
        /not the blamed round|another run|layout/,
        what,
      );
    }
  });

  it('proves nothing when the frame is not the accused’s', () => {
    const a = court(RULES);
    // b's name in the header, b's signature: a real frame, but not x's.
    const bs = frame(Number.NaN, { from: 1 }, pairs[1]!.privateKey);
    const round = { step: STEP, generation: GEN, members: MEMBERS, participantKeys: KEYS };
    assert.match(a.proof(round, 'x', nonfinite(bs)).text, /participant 1's, not x's/);
    assert.equal(a.judge('a', 'x', STEP, GEN, nonfinite(bs)).kind, 'unverifiable');
    // x's name in the header, signed by the accuser a: forged.
    const forged = frame(Number.NaN, {}, pairs[0]!.privateKey);
    assert.match(a.proof(round, 'x', nonfinite(forged)).text, /signature is not sender 2's/);
    assert.equal(a.judge('a', 'x', STEP, GEN, nonfinite(forged)).kind, 'unverifiable');
  });

  it('proves nothing with an altered or finite payload', () => {
    const round = { step: STEP, generation: GEN, members: MEMBERS, participantKeys: KEYS };
    const honest = frame(0.5);
    const altered = nonfinite(honest);
    const payload = new Float32Array(altered.payload!.slice().buffer);
    payload[3] = Number.NaN; // the accuser writes a NaN into x's honest frame
    const a = court(RULES);
    const v = a.proof(round, 'x', { ...altered, payload: new Uint8Array(payload.buffer) });
    assert.match(v.text, /not the one the signed MAC covers/);
    assert.equal(a.judge('a', 'x', STEP, GEN, nonfinite(honest)).kind, 'unverifiable');
    assert.match(a.proof(round, 'x', nonfinite(honest)).text, /every value of the payload is finite/);
  });

  it('proves a layout offence only when the signed header differs from the round', () => {
    const round = { step: STEP, generation: GEN, members: MEMBERS, participantKeys: KEYS };
    const layout = (msg: Uint8Array): FrameEvidence => ({ reason: 'layout', frame: signedFrameOf(msg) });
    const wrong = frame(0.5, { totalLength: RULES.length * 2 });
    assert.equal(court(RULES).judge('a', 'x', STEP, GEN, layout(wrong)).kind, 'proven');
    assert.equal(court(RULES).judge('a', 'x', STEP, GEN, layout(frame(0.5))).kind, 'unverifiable');
    assert.match(court(RULES).proof(round, 'x', layout(frame(0.5))).text, /has the round's layout/);
  });

  it('proves nothing where frames are not attributable (no frame rules, or unsigned rounds)', () => {
    const e = nonfinite(frame(Number.NaN));
    assert.equal(court().judge('a', 'x', STEP, GEN, e).kind, 'unverifiable');
    const unsigned = new Accusations(RULES);
    unsigned.opened({ step: STEP, generation: GEN, members: MEMBERS });
    assert.equal(unsigned.judge('a', 'x', STEP, GEN, e).kind, 'unverifiable');
  });

  it('still calls false a blame for a round that was never opened, evidence or not', () => {
    const e = nonfinite(frame(Number.NaN, { generation: 900_010 }));
    assert.equal(court(RULES).judge('a', 'x', STEP, 900_010, e).kind, 'false');
  });
});

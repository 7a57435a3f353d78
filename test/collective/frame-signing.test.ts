import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { chunkElements, Layout } from '../../src/collective/chunking.ts';
import { checkFrameEvidence, type FrameEvidence } from '../../src/collective/evidence.ts';
import {
  encodeFrame,
  FrameKind,
  runHash,
  verifyFrame,
  verifyFrameSignature,
} from '../../src/collective/frame.ts';
import {
  AllReduceInputError,
  AllReduceProtocolError,
  type RefusedFrame,
} from '../../src/collective/index.ts';
import { dataSubject, type RoundKey } from '../../src/collective/subjects.ts';
import { bytesOf, sumInOrder, useThreeMembers } from './members.ts';
import { readiesOf, why } from './spy.ts';

const KEY = randomBytes(32);
const pairs = [0, 1, 2].map(() => generateKeyPairSync('ed25519'));
const publicKeys: KeyObject[] = pairs.map((p) => p.publicKey);
const privateKey = (i: number) => pairs[i]!.privateKey;

/** A shard-owner reduce-scatter frame of chunk 0 of `shard` in `from`'s name, signed by `signer`. */
function dataFrame(key: RoundKey, from: number, shard: number, value: number, signer?: KeyObject) {
  const layout = new Layout(5000, 3, chunkElements(64 * 1024));
  const c = layout.chunk(shard, 0);
  const header = {
    kind: FrameKind.shardReduce,
    runHash: runHash(key.runId),
    step: key.step,
    generation: key.generation,
    from,
    shard,
    chunk: 0,
    chunkCount: layout.chunkCount(shard),
    offset: c.lo,
    totalLength: 5000,
  };
  return encodeFrame(header, new Float32Array(c.hi - c.lo).fill(value), KEY, undefined, signer);
}

describe('signed all-reduce frames', () => {
  const key = { runId: 'unit', step: 1, generation: 1 };

  it('verify under the signer’s public key only, and not once header or MAC changed', () => {
    const msg = dataFrame(key, 1, 0, 0.5, privateKey(1));
    assert.equal(verifyFrameSignature(msg, publicKeys[1]!), true);
    assert.equal(verifyFrameSignature(msg, publicKeys[0]!), false, 'another member’s key');
    assert.equal(verifyFrameSignature(dataFrame(key, 1, 0, 0.5), publicKeys[1]!), false, 'unsigned');
    for (const at of [20, msg.length - 1]) {
      const bad = msg.slice();
      bad[at]! ^= 1;
      assert.equal(verifyFrameSignature(bad, publicKeys[1]!), false, `byte ${at} altered`);
    }
    // The payload is bound through the MAC: changing it breaks the MAC, not the signature.
    const bad = msg.slice();
    bad[50]! ^= 1;
    assert.equal(verifyFrame(bad, KEY), false);
  });
});

// Real nats-server, three members; each signs with its own key and checks everyone's.
describe('all-reduce with per-member signing keys', () => {
  const rig = useThreeMembers();
  const { xs, reduce } = rig;
  const signed = (i: number, refused?: [RefusedFrame, string][]) => ({
    frameKey: KEY,
    maxPayload: 64 * 1024,
    signingKey: privateKey(i),
    participantKeys: publicKeys,
    ...(refused ? { onRefusedFrame: (r: RefusedFrame, who: string) => refused.push([r, who]) } : {}),
  });

  it('refuses at once to run with a signing key that is not its own entry in participantKeys', async () => {
    const key = { runId: 'wrong-self', step: 1, generation: 1 };
    await assert.rejects(reduce(0, key, { ...signed(0), signingKey: privateKey(1) }), (e: unknown) => {
      assert.ok(e instanceof AllReduceInputError, String(e));
      assert.match(e.message, /participantKeys\[0\] \(self\) is not the public key of signingKey/);
      return true;
    });
  });

  it('refuses a frame member m0 forged in m2’s name, blames nobody, and still gives the true sum', async () => {
    const key = { runId: 'impersonate', step: 1, generation: 1 };
    const refused: [RefusedFrame, string][] = [];
    const waitReady = await readiesOf(rig.spy, key, [0, 1]);
    const early = [reduce(0, key, signed(0, refused)), reduce(1, key, signed(1, refused))];
    await waitReady();
    // m0 holds the run key, so its forgery passes the MAC; NaN would get m2 blamed if accepted, and
    // as a first copy it would make m2's genuine frame a "conflict". Signed with m0's own key.
    for (const shard of [0, 1])
      rig.spy.publish(
        dataSubject(key, 'so-rs', shard, 2),
        dataFrame(key, 2, shard, Number.NaN, privateKey(0)),
      );
    await rig.spy.flush();
    const results = await Promise.all([...early, reduce(2, key, signed(2, refused))]);
    const want = sumInOrder(xs, [0, 1, 2]);
    for (const r of results) assert.equal(Buffer.compare(bytesOf(r), bytesOf(want)), 0);
    assert.equal(refused.length, 2, JSON.stringify(refused));
    assert.ok(refused.every(([r, who]) => r === 'signature' && who === 'm2'));
  });

  it('hands back evidence of a NaN that only its sender could have signed', async () => {
    const key = { runId: 'evidence', step: 1, generation: 1 };
    const poisoned = xs[1]!.slice();
    poisoned[10] = Number.NaN; // shard 0: m0 sums it
    const all = await Promise.allSettled([
      reduce(0, key, signed(0)),
      reduce(1, key, { ...signed(1), data: poisoned }),
      reduce(2, key, signed(2)),
    ]);
    const m0 = all[0]!;
    assert.equal(m0.status, 'rejected', why(m0));
    const err = (m0 as PromiseRejectedResult).reason as AllReduceProtocolError;
    assert.ok(err instanceof AllReduceProtocolError && err.evidence, String(err));
    assert.equal(err.member, 'm1');
    const e = err.evidence;
    const verdict = checkFrameEvidence(e, KEY, (i) => publicKeys[i]);
    assert.ok(verdict.proven, verdict.proven ? '' : verdict.why);
    assert.equal(verdict.header.from, 1);
    assert.equal(verdict.header.generation, 1);
    // A false accuser cannot use it against anyone else, nor alter it.
    const wrongKeys = (i: number) => publicKeys[i === 1 ? 2 : i];
    assert.match(String(notProven(checkFrameEvidence(e, KEY, wrongKeys))), /signature is not sender 1/);
    const finite = new Uint8Array(new Float32Array(e.payload!.length / 4).fill(1).buffer);
    assert.match(
      String(notProven(checkFrameEvidence({ ...e, payload: finite }, KEY, (i) => publicKeys[i]))),
      /not the one the signed MAC covers/,
    );
    assert.match(String(notProven(checkFrameEvidence(e, randomBytes(32), (i) => publicKeys[i]))), /MAC/);
  });

  it('proves two different signed copies of one chunk against their sender, and nothing forged', async () => {
    const key = { runId: 'equivocate', step: 1, generation: 1 };
    const waitReady = await readiesOf(rig.spy, key, [0, 1]);
    const early = [reduce(0, key, signed(0)), reduce(1, key, signed(1))];
    await waitReady();
    // m2 itself (its key) sends a first copy of its part of shard 0; its round sends another.
    const own = dataFrame(key, 2, 0, 0.5, privateKey(2));
    rig.spy.publish(dataSubject(key, 'so-rs', 0, 2), own);
    await rig.spy.flush();
    const all = await Promise.allSettled([...early, reduce(2, key, signed(2))]);
    const err = (all[0] as PromiseRejectedResult).reason as AllReduceProtocolError;
    assert.ok(err instanceof AllReduceProtocolError && err.evidence, why(all[0]!));
    assert.equal(err.member, 'm2');
    const e: FrameEvidence = err.evidence;
    assert.equal(e.reason, 'conflict');
    const verdict = checkFrameEvidence(e, KEY, (i) => publicKeys[i]);
    assert.ok(verdict.proven && verdict.header.from === 2, verdict.proven ? '' : verdict.why);
    // The same "conflict" made up by m0: a second copy in m2's name under m0's key proves nothing.
    const forged = dataFrame(key, 2, 0, 0.25, privateKey(0));
    const parts = {
      header: forged.subarray(0, 44),
      mac: forged.subarray(-32),
      signature: forged.subarray(-96, -32),
    };
    assert.equal(checkFrameEvidence({ ...e, conflicting: parts }, KEY, (i) => publicKeys[i]).proven, false);
  });
});

const notProven = (v: ReturnType<typeof checkFrameEvidence>) => (v.proven ? 'proven' : v.why);

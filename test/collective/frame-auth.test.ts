import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { chunkElements, Layout } from '../../src/collective/chunking.ts';
import { encodeFrame, FrameKind, runHash } from '../../src/collective/frame.ts';
import { AllReduceProtocolError, type RefusedFrame } from '../../src/collective/index.ts';
import { ctlSubject, dataSubject, type RoundKey } from '../../src/collective/subjects.ts';
import { bytesOf, sumInOrder, useThreeMembers } from './members.ts';
import { readiesOf, why } from './spy.ts';

const KEY = randomBytes(32);

/** A shard-owner reduce-scatter frame of chunk `chunk` of `shard`, claimed to come from `from`. */
function dataFrame(
  key: RoundKey,
  from: number,
  shard: number,
  chunk: number,
  value: number,
  frameKey?: Uint8Array,
) {
  const layout = new Layout(5000, 3, chunkElements(64 * 1024));
  const c = layout.chunk(shard, chunk);
  return encodeFrame(
    {
      kind: FrameKind.shardReduce,
      runHash: runHash(key.runId),
      step: key.step,
      generation: key.generation,
      from,
      shard,
      chunk,
      chunkCount: layout.chunkCount(shard),
      offset: c.lo,
      totalLength: 5000,
    },
    new Float32Array(c.hi - c.lo).fill(value),
    frameKey,
  );
}

const abortFrame = (key: RoundKey, from: number, frameKey?: Uint8Array) =>
  encodeFrame(
    {
      kind: FrameKind.abort,
      runHash: runHash(key.runId),
      step: key.step,
      generation: key.generation,
      from,
      shard: 0,
      chunk: 0,
      chunkCount: 0,
      offset: 0,
      totalLength: 5000,
    },
    new TextEncoder().encode('forged: give up'),
    frameKey,
  );

// Real nats-server: every frame carries an HMAC under the run's frame key (docs/security.md).
describe('authenticated all-reduce frames', () => {
  const rig = useThreeMembers();
  const { xs, reduce } = rig;

  it('drops forged data and abort frames, counts them, and still gives the true sum', async () => {
    const key = { runId: 'forge', step: 1, generation: 1 };
    const refused: [RefusedFrame, string][] = [];
    const extra = {
      frameKey: KEY,
      maxPayload: 64 * 1024,
      onRefusedFrame: (r: RefusedFrame, who: string) => refused.push([r, who]),
    };
    const waitReady = await readiesOf(rig.spy, key, [0, 1]);
    const early = [reduce(0, key, extra), reduce(1, key, extra)];
    await waitReady();
    // m0 and m1 are subscribed and wait for m2. A publisher without the key sends, in m2's name,
    // its "contribution" to shards 0 and 1 (first copies!) and an abort.
    for (const shard of [0, 1])
      rig.spy.publish(dataSubject(key, 'so-rs', shard, 2), dataFrame(key, 2, shard, 0, 1e6));
    rig.spy.publish(ctlSubject(key, 2), abortFrame(key, 2));
    await rig.spy.flush();
    const results = await Promise.all([...early, reduce(2, key, extra)]);
    const want = sumInOrder(xs, [0, 1, 2]);
    for (const r of results) assert.equal(Buffer.compare(bytesOf(r), bytesOf(want)), 0);
    assert.ok(refused.length >= 2, `refused ${JSON.stringify(refused)}`);
    assert.ok(refused.every(([r, who]) => r === 'auth' && who === 'm2'));
  });

  it('refuses a second copy of a chunk with other bytes, naming its sender', async () => {
    const key = { runId: 'conflict', step: 1, generation: 1 };
    const waitReady = await readiesOf(rig.spy, key, [0, 1]);
    const early = [
      reduce(0, key, { frameKey: KEY, maxPayload: 64 * 1024 }),
      reduce(1, key, { frameKey: KEY, maxPayload: 64 * 1024 }),
    ];
    await waitReady();
    // Made with the key (a key holder), in m2's name: then m2's own, different, copy arrives.
    rig.spy.publish(dataSubject(key, 'so-rs', 0, 2), dataFrame(key, 2, 0, 0, 0.5, KEY));
    await rig.spy.flush();
    const all = await Promise.allSettled([
      ...early,
      reduce(2, key, { frameKey: KEY, maxPayload: 64 * 1024 }),
    ]);
    const m0 = all[0]!;
    assert.equal(m0.status, 'rejected', why(m0));
    const err = (m0 as PromiseRejectedResult).reason as AllReduceProtocolError;
    assert.ok(err instanceof AllReduceProtocolError, String(err));
    assert.equal(err.member, 'm2');
    assert.match(err.message, /two different copies/);
  });

  it('names the member whose contribution holds NaN', async () => {
    const key = { runId: 'nan', step: 1, generation: 1 };
    const poisoned = xs[1]!.slice();
    poisoned[10] = Number.NaN; // in shard 0 (m0 owns it)
    const all = await Promise.allSettled([
      reduce(0, key, { frameKey: KEY }),
      reduce(1, key, { frameKey: KEY, data: poisoned }),
      reduce(2, key, { frameKey: KEY }),
    ]);
    const m0 = all[0]!;
    assert.equal(m0.status, 'rejected', why(m0));
    const err = (m0 as PromiseRejectedResult).reason as AllReduceProtocolError;
    assert.ok(err instanceof AllReduceProtocolError, String(err));
    assert.equal(err.member, 'm1');
    for (const r of all) {
      const e = r.status === 'rejected' ? (r.reason as Error) : undefined;
      if (e instanceof AllReduceProtocolError) assert.equal(e.member, 'm1', 'nobody else is blamed');
    }
  });
});

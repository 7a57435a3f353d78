import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeFrame, FrameKind, runHash } from '../../src/collective/frame.ts';
import {
  type AllReduceAlgorithm,
  AllReduceCancelledError,
  AllReduceInputError,
  AllReducePeerAbortedError,
  AllReduceProtocolError,
  AllReduceTimeoutError,
  allReduceSum,
} from '../../src/collective/index.ts';
import { ctlSubject, dataSubject, type Phase } from '../../src/collective/subjects.ts';
import { bytesOf, sumInOrder, useThreeMembers } from './members.ts';
import { readiesOf, readyFrame, why } from './spy.ts';

describe('all-reduce faults other than a disconnect', () => {
  const rig = useThreeMembers();
  const { members, xs, reduce } = rig;

  for (const algorithm of [
    'shard-owner',
    'ring',
    'hierarchical',
  ] as const satisfies readonly AllReduceAlgorithm[]) {
    it(`ignores frames of an older generation, another run or step on its subjects (${algorithm})`, async () => {
      const key = { runId: 'faults', step: 5, generation: 1 };
      const waitReady = await readiesOf(rig.spy, key, [0, 1]);
      const early = [reduce(0, key, { algorithm }), reduce(1, key, { algorithm })];
      await waitReady();
      // m2 has not subscribed yet. Were a stale ready of m2 taken, m0 and m1 would send into the void.
      const stale = [{ generation: 0 }, { runId: 'other-run' }];
      for (const over of stale) rig.spy.publish(ctlSubject(key, 2), readyFrame(key, 2, over));
      const junk = new Float32Array(5000).fill(1e30);
      const phases: Phase[] = ['so-rs', 'so-ag', 'ring-rs', 'ring-ag'];
      const kinds = [
        FrameKind.shardReduce,
        FrameKind.shardGather,
        FrameKind.ringReduce,
        FrameKind.ringGather,
      ];
      for (const [p, phase] of phases.entries()) {
        for (let shard = 0; shard < 3; shard++) {
          for (let from = 0; from < members.length; from++) {
            for (const h of [
              { generation: 0, runHash: runHash('faults'), step: 5 },
              { generation: 1, runHash: runHash('other'), step: 5 },
              { generation: 1, runHash: runHash('faults'), step: 4 },
            ]) {
              const lo = Math.floor((shard * 5000) / 3);
              const hi = Math.floor(((shard + 1) * 5000) / 3);
              const frame = encodeFrame(
                {
                  ...h,
                  kind: kinds[p]!,
                  from,
                  shard,
                  chunk: 0,
                  chunkCount: 1,
                  offset: lo,
                  totalLength: 5000,
                },
                junk.subarray(lo, hi),
              );
              rig.spy.publish(dataSubject(key, phase, shard, from), frame);
              rig.spy.publish(dataSubject({ ...key, generation: 0 }, phase, shard, from), frame);
            }
          }
        }
      }
      await rig.spy.flush();
      const results = await Promise.all([...early, reduce(2, key, { algorithm })]);
      const reference = algorithm === 'shard-owner' ? sumInOrder(xs, [0, 1, 2]) : undefined;
      for (const r of results) {
        assert.equal(Buffer.compare(bytesOf(r), bytesOf(results[0]!)), 0);
        assert.ok(
          r.every((v) => Math.abs(v) < 1e29),
          'a junk frame was summed',
        );
      }
      if (reference) assert.deepEqual(bytesOf(results[0]!), bytesOf(reference));
    });

    it(`names the member that never sends its part, after the deadline (${algorithm})`, async () => {
      const key = { runId: 'faults', step: 6, generation: 0 };
      const waitReady = await readiesOf(rig.spy, key, [0, 1]);
      const calls = [0, 1].map((i) => reduce(i, key, { algorithm, timeoutMs: 1500 }));
      const settled = Promise.allSettled(calls);
      await waitReady();
      // m2 "joins" the barrier but never subscribes or sends: its data is what goes missing.
      rig.spy.publish(ctlSubject(key, 2), readyFrame(key, 2));
      const [r0, r1] = await settled;
      for (const r of [r0!, r1!]) {
        assert.ok(r.status === 'rejected' && r.reason instanceof AllReduceTimeoutError, why(r));
      }
      const e0 = (r0 as PromiseRejectedResult).reason as AllReduceTimeoutError;
      const e1 = (r1 as PromiseRejectedResult).reason as AllReduceTimeoutError;
      // m0 follows m2 in the ring; in shard-owner every owner misses m2's contribution, and so does
      // every lane member of the hierarchy on one node (no node names: the shard-owner layout).
      const direct = (e: AllReduceTimeoutError) =>
        e.missing.filter((p) => p.phase === 'reduce-scatter').map((p) => p.member);
      assert.deepEqual([...new Set(direct(e0))], ['m2']);
      assert.match(e0.message, /m2 \(reduce-scatter shard \d chunks 0\)/);
      if (algorithm !== 'ring') assert.deepEqual([...new Set(direct(e1))], ['m2']);
      else assert.deepEqual(e1.missingMembers, ['m0']);
    });
  }

  it('names members that never reach the ready barrier', async () => {
    const key = { runId: 'faults', step: 7, generation: 0 };
    const results = await Promise.allSettled([0, 1].map((i) => reduce(i, key, { timeoutMs: 800 })));
    for (const r of results) {
      assert.ok(r.status === 'rejected' && r.reason instanceof AllReduceTimeoutError);
      assert.deepEqual(r.reason.missingMembers, ['m2']);
      assert.deepEqual(r.reason.missing[0]?.phase, 'ready');
    }
  });

  it('waits for a named observer and names it when it never subscribes', async () => {
    const key = { runId: 'faults', step: 14, generation: 0 };
    const results = await Promise.allSettled(
      [0, 1, 2].map((i) => reduce(i, key, { timeoutMs: 800, observers: ['coordinator'] })),
    );
    for (const r of results) {
      assert.ok(r.status === 'rejected' && r.reason instanceof AllReduceTimeoutError, why(r));
      assert.deepEqual(r.reason.missingMembers, ['coordinator']);
    }
  });

  it('cancels on the caller signal and tells the peers, who stop waiting', async () => {
    const key = { runId: 'faults', step: 10, generation: 0 };
    const waitReady = await readiesOf(rig.spy, key, [0, 1]);
    const ac = new AbortController();
    const calls = Promise.allSettled([reduce(0, key, { signal: ac.signal }), reduce(1, key)]);
    await waitReady();
    ac.abort();
    const [r0, r1] = await calls;
    assert.ok(r0!.status === 'rejected' && r0!.reason instanceof AllReduceCancelledError, why(r0!));
    assert.ok(r1!.status === 'rejected' && r1!.reason instanceof AllReducePeerAbortedError, why(r1!));
    assert.equal(r1.reason.member, 'm0');
  });

  it('rejects at once when the signal is already aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      reduce(0, { runId: 'faults', step: 13, generation: 0 }, { signal: ac.signal }),
      AllReduceCancelledError,
    );
  });

  it('refuses a peer whose vector has another length', async () => {
    const key = { runId: 'faults', step: 11, generation: 0 };
    const two = ['m0', 'm1'];
    const results = await Promise.allSettled([
      allReduceSum({
        nc: rig.conns[0]!,
        ...key,
        members: two,
        self: 'm0',
        data: new Float32Array(10),
        timeoutMs: 5000,
      }),
      allReduceSum({
        nc: rig.conns[1]!,
        ...key,
        members: two,
        self: 'm1',
        data: new Float32Array(12),
        timeoutMs: 5000,
      }),
    ]);
    // Whoever sees the other's frame first fails with the protocol error and tells the other.
    const protocol = results.filter(
      (r) => r.status === 'rejected' && r.reason instanceof AllReduceProtocolError,
    );
    assert.ok(protocol.length >= 1, results.map(why).join('; '));
    for (const r of results) {
      assert.ok(r.status === 'rejected', why(r));
      assert.match(String(r.reason), /sends a vector of 1[02] elements/);
    }
  });

  it('rejects bad options with an error naming the field', async () => {
    const base = {
      nc: rig.conns[0]!,
      runId: 'faults',
      step: 12,
      generation: 0,
      data: xs[0]!,
      timeoutMs: 1000,
    };
    const bad: Array<[Parameters<typeof allReduceSum>[0], RegExp]> = [
      [{ ...base, members: ['m1', 'm0'], self: 'm0' }, /sorted/],
      [{ ...base, members: ['m0', 'm0'], self: 'm0' }, /sorted ascending and unique/],
      [{ ...base, members: ['m0', 'm1'], self: 'm9' }, /self "m9"/],
      [{ ...base, runId: 'a.b', members: ['m0'], self: 'm0' }, /runId "a.b"/],
      [{ ...base, members: ['m0'], self: 'm0', maxPayload: 1e12 }, /max_payload/],
      [{ ...base, members: ['m0'], self: 'm0', step: -1 }, /step/],
    ];
    for (const [o, re] of bad)
      await assert.rejects(
        allReduceSum(o),
        (e: Error) => e instanceof AllReduceInputError && re.test(e.message),
      );
  });
});

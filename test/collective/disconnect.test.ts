import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AllReduceDisconnectedError,
  AllReducePeerAbortedError,
  allReduceSum,
} from '../../src/collective/index.ts';
import { type RoundKey, roundPrefix } from '../../src/collective/subjects.ts';
import { bytesOf, randomGradients, sumInOrder, useThreeMembers } from './members.ts';
import { readiesOf, reconnected, why } from './spy.ts';

describe('all-reduce when the NATS server restarts', () => {
  const rig = useThreeMembers();
  const { members, xs, reduce } = rig;

  it('rejects when the server restarts mid-reduce, and the retry under generation + 1 succeeds', async () => {
    const key = { runId: 'faults', step: 8, generation: 0 };
    const waitReady = await readiesOf(rig.spy, key, [0, 1]);
    const calls = Promise.allSettled([0, 1].map((i) => reduce(i, key)));
    await waitReady();
    const back = [...rig.conns, rig.spy].map(reconnected);
    await rig.server.restart();
    for (const r of await calls) {
      assert.ok(r.status === 'rejected' && r.reason instanceof AllReduceDisconnectedError, why(r));
      assert.equal(r.reason.retryable, true);
    }
    await Promise.all(back);
    const retry = await Promise.all([0, 1, 2].map((i) => reduce(i, { ...key, generation: 1 })));
    for (const r of retry) assert.deepEqual(bytesOf(r), bytesOf(sumInOrder(xs, [0, 1, 2])));
  });

  // 32 MiB each: still moving when the server dies. (8 MiB once finished first under CI load, the
  // float loops compiled, while a container server was still being stopped.)
  const big = randomGradients(3, 2 ** 23, 5);
  const bigSum = bytesOf(sumInOrder(big, [0, 1, 2]));
  // The subject of each algorithm's first data (hierarchical: the reduce-scatter inside node 0, the
  // only node when no node names are given).
  const firstPhase = { 'shard-owner': 'so-rs', ring: 'ring-rs', hierarchical: 'hrs-n0' } as const;
  for (const algorithm of ['shard-owner', 'ring', 'hierarchical'] as const) {
    it(`never returns a wrong sum when the server restarts during the data phase (${algorithm})`, async () => {
      const key = { runId: 'faults', step: 9, generation: algorithm === 'ring' ? 10 : 0 };
      let restarting: Promise<void> | undefined;
      const firstData = rig.spy.subscribe(`${roundPrefix(key)}.${firstPhase[algorithm]}.>`, {
        max: 1,
        callback: () => {
          restarting = rig.server.restart();
        },
      });
      await rig.spy.flush();
      const back = [...rig.conns, rig.spy].map(reconnected);
      const run = (k: RoundKey) =>
        Promise.allSettled(
          [0, 1, 2].map((i) =>
            allReduceSum({
              nc: rig.conns[i]!,
              ...k,
              members,
              self: members[i]!,
              data: big[i]!,
              timeoutMs: 20_000,
              algorithm,
            }),
          ),
        );
      const outcomes = await run(key);
      firstData.unsubscribe();
      await restarting;
      await Promise.all(back);
      const expected = algorithm === 'shard-owner' ? bigSum : undefined;
      for (const o of outcomes) {
        if (o.status === 'rejected')
          assert.ok(
            o.reason instanceof AllReduceDisconnectedError || o.reason instanceof AllReducePeerAbortedError,
            String(o.reason),
          );
        else if (expected) assert.equal(Buffer.compare(bytesOf(o.value), expected), 0);
      }
      assert.ok(
        outcomes.some((o) => o.status === 'rejected'),
        'the restart came too late to test anything',
      );
      const retry = await run({ ...key, generation: key.generation + 1 });
      for (const o of retry) {
        assert.equal(o.status, 'fulfilled', String((o as PromiseRejectedResult).reason));
      }
      const sums = retry.map((o) => bytesOf((o as PromiseFulfilledResult<Float32Array>).value));
      for (const s of sums) assert.equal(Buffer.compare(s, sums[0]!), 0);
      if (expected) assert.equal(Buffer.compare(sums[0]!, expected), 0);
    });
  }
});

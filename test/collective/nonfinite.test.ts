import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  type AllReduceAlgorithm,
  AllReduceProtocolError,
  type RefusedFrame,
} from '../../src/collective/index.ts';
import { bytesOf, sumInOrder, useThreeMembers } from './members.ts';

const KEY = randomBytes(32);
const FLT_MAX = 3.4028234663852886e38;
const ALGORITHMS: readonly AllReduceAlgorithm[] = ['shard-owner', 'ring', 'hierarchical'];

// Real nats-server, three members, frames under a key. Index 10 lies in shard 0 (5000 elements).
describe('non-finite values in an all-reduce', () => {
  const rig = useThreeMembers();
  let round = 0;

  /** Every member's outcome when member i contributes `data[i]` (or its seeded gradient). */
  async function outcomes(algorithm: AllReduceAlgorithm, data: Partial<Record<number, Float32Array>>) {
    const key = { runId: `nonfinite${round++}`, step: 1, generation: 1 };
    const refused: [RefusedFrame, string][] = [];
    const extra = (i: number) => ({
      algorithm,
      frameKey: KEY,
      onRefusedFrame: (r: RefusedFrame, who: string) => refused.push([r, who]),
      ...(data[i] ? { data: data[i] } : {}),
    });
    const all = await Promise.allSettled([0, 1, 2].map((i) => rig.reduce(i, key, extra(i))));
    return { all, refused };
  }

  /**
   * Asserts that the round failed with a protocol error naming `sender` and nobody else. `except`: a
   * member whose own outcome is not checked (the one that summed an overflow keeps its bytes).
   */
  function assertBlames(o: Awaited<ReturnType<typeof outcomes>>, sender: string, except?: number): void {
    const protocol = o.all
      .map((r) => (r.status === 'rejected' ? (r.reason as Error) : undefined))
      .filter((e): e is AllReduceProtocolError => e instanceof AllReduceProtocolError);
    assert.ok(protocol.length > 0, `no protocol error: ${o.all.map((r) => r.status).join(', ')}`);
    for (const e of protocol) {
      assert.equal(e.member, sender, e.message);
      assert.match(e.message, /non-finite value/);
    }
    assert.ok(
      o.all.every((r, i) => r.status === 'rejected' || i === except),
      'no member returns a sum',
    );
    assert.ok(o.refused.length > 0 && o.refused.every(([r, who]) => r === 'nonfinite' && who === sender));
  }

  const poisoned = (i: number, at: readonly [number, number][]) => {
    const x = rig.xs[i]!.slice();
    for (const [index, value] of at) x[index] = value;
    return x;
  };

  for (const algorithm of ALGORITHMS) {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      it(`refuses ${value} in a contribution, naming its sender (${algorithm})`, async () => {
        assertBlames(await outcomes(algorithm, { 1: poisoned(1, [[10, value]]) }), 'm1');
      });
    }

    it(`accepts ±FLT_MAX, the largest finite float32, and sums it (${algorithm})`, async () => {
      const x1 = poisoned(1, [
        [10, FLT_MAX],
        [11, -FLT_MAX],
      ]);
      const { all, refused } = await outcomes(algorithm, { 1: x1 });
      assert.deepEqual(refused, []);
      const results = all.map((r) => {
        assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String(r.reason) : '');
        return (r as PromiseFulfilledResult<Float32Array>).value;
      });
      // Summed in each algorithm's order; the values at 10 and 11 do not depend on it.
      const want = sumInOrder([rig.xs[0]!, x1, rig.xs[2]!], [0, 1, 2]);
      for (const r of results) {
        assert.equal(r[10], want[10]);
        assert.equal(r[11], want[11]);
        assert.equal(Buffer.compare(bytesOf(r), bytesOf(results[0]!)), 0);
      }
    });

    // FLT_MAX + FLT_MAX overflows to +Inf in float32: the member that summed it sent the Inf, and
    // every receiver refuses it. The summer does not check its own sum (docs/collective.md, "What
    // is not done yet"): it may finish with +Inf before the others' abort reaches it.
    // (Hierarchical without node names: one node, lane k summed by member k, as shard-owner.)
    const summer = algorithm === 'ring' ? 'm1' : 'm0';
    it(`refuses a partial or reduced sum that overflowed to Infinity, naming ${summer} who summed it (${algorithm})`, async () => {
      const data = { 0: poisoned(0, [[10, FLT_MAX]]), 1: poisoned(1, [[10, FLT_MAX]]) };
      assertBlames(await outcomes(algorithm, data), summer, Number(summer.slice(1)));
    });
  }
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { type AllReduceAlgorithm, allReduceSum, observeAllReduce } from '../../src/collective/index.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import {
  bytesOf,
  connectMembers,
  hierarchicalSum,
  memberIds,
  randomGradients,
  sumInOrder,
  worstErrorRatio,
} from './members.ts';

const algorithms: readonly AllReduceAlgorithm[] = ['shard-owner', 'ring', 'hierarchical'];

// Hierarchical rounds get members interleaved over two nodes (named out of order): 3 and 5 members
// give nodes of different sizes. The other algorithms ignore node names.
const nodesOf = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 'zeta' : 'alpha'));

// The bytes each algorithm documents: shard-owner sums in member order; the ring sums shard s in
// ring order starting at member s (docs/collective.md). Built here independently of src/.
function documentedSum(algorithm: AllReduceAlgorithm, xs: readonly Float32Array[]): Float32Array {
  const n = xs.length;
  const members = xs.map((_, i) => i);
  if (algorithm === 'shard-owner') return sumInOrder(xs, members);
  if (algorithm === 'hierarchical') return hierarchicalSum(xs, nodesOf(n));
  const out = new Float32Array(xs[0]!.length);
  for (let s = 0; s < n; s++) {
    const lo = Math.floor((s * out.length) / n);
    const hi = Math.floor(((s + 1) * out.length) / n);
    out.set(
      sumInOrder(
        xs,
        members.map((k) => (s + k) % n),
        lo,
        hi,
      ),
      lo,
    );
  }
  return out;
}

describe('all-reduce sum', () => {
  let server: NatsServer;
  const conns: NatsConnection[] = [];

  before(async () => {
    server = await startNats();
    conns.push(...(await connectMembers(server.url, 6)));
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await server?.stop();
  });

  for (const algorithm of algorithms) {
    for (const n of [2, 3, 5]) {
      it(`gives ${n} members (${algorithm}) and an observer the same bytes, a correct sum`, async () => {
        const length = 10_007; // not a multiple of n: shards differ in size
        const xs = randomGradients(n, length, 1000 * n + algorithm.length);
        const members = memberIds(n);
        const common = {
          runId: 'run1',
          step: 7,
          generation: 0,
          members,
          observers: ['coord'],
          timeoutMs: 10_000,
          algorithm,
          nodes: nodesOf(n),
        };
        const [results, observed] = await Promise.all([
          Promise.all(
            members.map((self, i) => allReduceSum({ ...common, nc: conns[i]!, self, data: xs[i]! })),
          ),
          observeAllReduce({ ...common, nc: conns[5]!, self: 'coord', length }),
        ]);
        for (const r of results.slice(1)) assert.equal(Buffer.compare(bytesOf(r), bytesOf(results[0]!)), 0);
        assert.equal(Buffer.compare(bytesOf(observed), bytesOf(results[0]!)), 0, 'observer differs');
        assert.ok(worstErrorRatio(results[0]!, xs) <= 1, 'sum is off the float64 reference');
        const expected = documentedSum(algorithm, xs);
        assert.equal(Buffer.compare(bytesOf(results[0]!), bytesOf(expected)), 0, 'not the documented order');
        // The data is such that another order gives other bytes, so the checks above mean something.
        const reversed = sumInOrder(
          xs,
          members.map((_, i) => n - 1 - i),
        );
        if (n > 2) assert.notEqual(Buffer.compare(bytesOf(reversed), bytesOf(expected)), 0);
        if (algorithm === 'hierarchical' && n > 2) {
          const flat = sumInOrder(
            xs,
            members.map((_, i) => i),
          );
          assert.notEqual(Buffer.compare(bytesOf(flat), bytesOf(expected)), 0, 'node order not exercised');
        }
        assert.deepEqual(
          Array.from(xs[0]!.subarray(0, 3)),
          Array.from(randomGradients(n, 3, 1000 * n + algorithm.length)[0]!),
          'input modified',
        );
      });
    }

    it(`handles fewer elements than members (${algorithm})`, async () => {
      const xs = randomGradients(5, 3, 9);
      const members = memberIds(5);
      const results = await Promise.all(
        members.map((self, i) =>
          allReduceSum({
            nc: conns[i]!,
            runId: 'run1',
            step: 8,
            generation: 0,
            members,
            self,
            data: xs[i]!,
            timeoutMs: 10_000,
            algorithm,
            nodes: nodesOf(5),
          }),
        ),
      );
      for (const r of results) assert.deepEqual(bytesOf(r), bytesOf(documentedSum(algorithm, xs)));
    });
  }

  for (const algorithm of algorithms) {
    it(`writes every element of the sum into a buffer the caller keeps, round after round (${algorithm})`, async () => {
      const n = 3;
      const length = 10_007;
      const members = memberIds(n);
      // NaN everywhere: an element a round forgot to write would survive into the bytes compared.
      const kept = members.map(() => new Float32Array(length).fill(Number.NaN));
      for (const [generation, seed] of [
        [0, 21],
        [1, 22],
      ] as const) {
        const xs = randomGradients(n, length, seed);
        const results = await Promise.all(
          members.map((self, i) =>
            allReduceSum({
              nc: conns[i]!,
              runId: 'run1',
              step: 11,
              generation,
              members,
              self,
              data: xs[i]!,
              into: kept[i]!,
              timeoutMs: 10_000,
              algorithm,
              nodes: nodesOf(n),
            }),
          ),
        );
        const expected = bytesOf(documentedSum(algorithm, xs));
        results.forEach((r, i) => {
          assert.equal(r, kept[i], `member ${i} got another array than its own`);
          assert.equal(Buffer.compare(bytesOf(r), expected), 0, `member ${i}, generation ${generation}`);
        });
      }
    });
  }

  it('refuses an into of another length, or one overlapping data, naming into', async () => {
    const whole = Float32Array.from({ length: 20 }, (_, i) => i);
    const data = whole.subarray(0, 10);
    const solo = (into: Float32Array) =>
      allReduceSum({
        nc: conns[0]!,
        runId: 'run1',
        step: 12,
        generation: 0,
        members: ['solo'],
        self: 'solo',
        data,
        into,
        timeoutMs: 5000,
      });
    await assert.rejects(solo(new Float32Array(9)), /into holds 9 values; data has 10/);
    await assert.rejects(solo(whole.subarray(9, 19)), /into overlaps data/);
    // The rest of the same buffer is fine: it does not overlap.
    const r = await solo(whole.subarray(10, 20));
    assert.deepEqual(
      Array.from(r),
      Array.from({ length: 10 }, (_, i) => i),
    );
    assert.deepEqual(
      Array.from(whole.subarray(10)),
      Array.from({ length: 10 }, (_, i) => i),
    );
  });

  it('takes worker ids that are host names with dots and dashes', async () => {
    const xs = randomGradients(2, 1000, 11);
    const members = ['ip-10-0-0-7.ec2.internal-41', 'ip-10-0-0-9.ec2.internal-17'];
    const key = {
      runId: 'run1',
      step: 10,
      generation: 0,
      members,
      observers: ['coord.local'],
      timeoutMs: 10_000,
    };
    const [a, b, observed] = await Promise.all([
      allReduceSum({ ...key, nc: conns[0]!, self: members[0]!, data: xs[0]! }),
      allReduceSum({ ...key, nc: conns[1]!, self: members[1]!, data: xs[1]! }),
      observeAllReduce({ ...key, nc: conns[2]!, self: 'coord.local', length: 1000 }),
    ]);
    for (const r of [a!, b!, observed!]) assert.deepEqual(bytesOf(r), bytesOf(sumInOrder(xs, [0, 1])));
  });

  it('returns a copy of the data for a single member', async () => {
    const [x] = randomGradients(1, 100, 3);
    const r = await allReduceSum({
      nc: conns[0]!,
      runId: 'run1',
      step: 9,
      generation: 0,
      members: ['solo'],
      self: 'solo',
      data: x!,
      timeoutMs: 5000,
    });
    assert.deepEqual(bytesOf(r), bytesOf(x!));
    assert.notEqual(r.buffer, x!.buffer);
  });
});

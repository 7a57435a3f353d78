import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { allReduceSum, type ContributionNorm } from '../../src/collective/index.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { connectMembers, memberIds, randomGradients } from './members.ts';

// Real nats-server: every shard owner measures each contributor's part of its shard while summing.
// Added over the owners, a contributor's sums of squares are its whole vector's, computed here
// independently in float64 from the data the test gave it; one contributor is scaled by 1e30 (an
// overflow in float32 squares) and the owners still measure it.
describe('per-contributor norms measured by shard owners', () => {
  let server: NatsServer;
  let conns: NatsConnection[] = [];
  before(async () => {
    // A small max payload: several chunks per shard, so the sums run over chunks.
    server = await startNats({ maxPayload: 16 * 1024 });
    conns = await connectMembers(server.url, 4);
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await server?.stop();
  });

  it("each owner reports every contributor; the sums over owners equal each vector's squared norm", async () => {
    const n = 4;
    const length = 30_001;
    const xs = randomGradients(n, length, 11);
    const big = xs[2]!;
    for (let i = 0; i < length; i++) big[i]! *= 1e30;
    const members = memberIds(n);
    const reports = new Map<string, readonly ContributionNorm[]>();
    await Promise.all(
      members.map((self, i) =>
        allReduceSum({
          nc: conns[i]!,
          runId: 'run1',
          step: 0,
          generation: 1,
          members,
          observers: [],
          timeoutMs: 10_000,
          algorithm: 'shard-owner',
          self,
          data: xs[i]!,
          onContributions: (c) => reports.set(self, c),
        }),
      ),
    );
    assert.equal(reports.size, n, 'every owner reported');
    const total = new Map<string, number>();
    for (const [owner, norms] of reports) {
      assert.deepEqual(
        norms.map((c) => c.member),
        members,
        `${owner} lists each contributor in member order`,
      );
      for (const c of norms) total.set(c.member, (total.get(c.member) ?? 0) + c.sumSquares);
    }
    members.forEach((m, i) => {
      let expected = 0;
      for (const v of xs[i]!) expected += v * v;
      const got = total.get(m)!;
      assert.ok(Number.isFinite(got), `${m}: ${got}`);
      assert.ok(Math.abs(got - expected) <= 1e-12 * expected, `${m}: measured ${got}, expected ${expected}`);
    });
  });

  it('algorithms without shard owners report nothing (ring)', async () => {
    const members = memberIds(3);
    const xs = randomGradients(3, 1000, 3);
    let called = 0;
    await Promise.all(
      members.map((self, i) =>
        allReduceSum({
          nc: conns[i]!,
          runId: 'run1',
          step: 0,
          generation: 2,
          members,
          observers: [],
          timeoutMs: 10_000,
          algorithm: 'ring',
          self,
          data: xs[i]!,
          onContributions: () => called++,
        }),
      ),
    );
    assert.equal(called, 0);
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  type AllReduceAlgorithm,
  allReduceSum,
  observeAllReduce,
  type RoundReport,
} from '../../src/collective/index.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { connectMembers, memberIds, randomGradients } from './members.ts';

// The cost a round reports is checked against what the NATS server itself counted (/varz), so the
// figures the workers' lora_mpt_allreduce_bytes_total shows are the bytes that crossed the network.
interface Varz {
  readonly in_bytes: number;
  readonly out_bytes: number;
}

describe('all-reduce round reports', () => {
  let server: NatsServer;
  const conns: NatsConnection[] = [];
  const varz = async (): Promise<Varz> => (await fetch(`${server.monitorUrl}/varz`)).json() as Promise<Varz>;

  before(async () => {
    server = await startNats({ httpPort: 0 });
    conns.push(...(await connectMembers(server.url, 4)));
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await server?.stop();
  });

  for (const algorithm of [
    'shard-owner',
    'ring',
    'hierarchical',
  ] as const satisfies readonly AllReduceAlgorithm[]) {
    it(`reports, per participant, the bytes the server received from it (${algorithm}, 3 members and an observer)`, async () => {
      const length = 50_000;
      const xs = randomGradients(3, length, 5);
      const members = memberIds(3);
      const reports: RoundReport[] = [];
      const common = {
        runId: 'run1',
        step: 3,
        generation: algorithm.length,
        members,
        observers: ['coord'],
        timeoutMs: 10_000,
        algorithm,
        onReport: (r: RoundReport) => reports.push(r),
      };
      const before = await varz();
      await Promise.all([
        ...members.map((self, i) => allReduceSum({ ...common, nc: conns[i]!, self, data: xs[i]! })),
        observeAllReduce({ ...common, nc: conns[3]!, self: 'coord', length }),
      ]);
      await Promise.all(conns.map((c) => c.flush()));
      const after = await varz();
      assert.equal(reports.length, 4, 'one report per participant');
      assert.deepEqual(reports.map((r) => [r.role, r.algorithm, r.members, r.completed]).sort(), [
        ['member', algorithm, 3, true],
        ['member', algorithm, 3, true],
        ['member', algorithm, 3, true],
        ['observer', algorithm, 3, true],
      ]);
      const sent = reports.reduce((n, r) => n + r.bytesSent, 0);
      assert.equal(sent, after.in_bytes - before.in_bytes, 'bytes sent = bytes the server received');
      // Every member moves at least its whole gradient; the observer receives the result once.
      for (const r of reports.filter((x) => x.role === 'member'))
        assert.ok(r.bytesSent >= length * 4 * (2 / 3));
      const observer = reports.find((r) => r.role === 'observer')!;
      assert.ok(observer.bytesReceived >= length * 4, `observer received ${observer.bytesReceived}`);
      const received = reports.reduce((n, r) => n + r.bytesReceived, 0);
      assert.ok(received <= after.out_bytes - before.out_bytes, 'no more received than the server sent');
      for (const r of reports) assert.ok(r.seconds > 0);
    });
  }

  it('reports a round that failed, with what it sent', async () => {
    const reports: RoundReport[] = [];
    const cancel = new AbortController();
    const round = allReduceSum({
      nc: conns[0]!,
      runId: 'run1',
      step: 4,
      generation: 0,
      members: memberIds(2),
      self: 'm0',
      data: new Float32Array(10),
      timeoutMs: 10_000,
      signal: cancel.signal,
      onReport: (r) => reports.push(r),
    });
    cancel.abort();
    await assert.rejects(round, { name: 'AllReduceCancelledError' });
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.completed, false);
  });
});

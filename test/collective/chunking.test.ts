import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { FRAME_OVERHEAD } from '../../src/collective/frame.ts';
import { allReduceSum, observeAllReduce } from '../../src/collective/index.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { bytesOf, connectMembers, memberIds, randomGradients, worstErrorRatio } from './members.ts';

const MAX_PAYLOAD = 64 * 1024;

describe('all-reduce above max_payload', () => {
  let server: NatsServer;
  let conns: NatsConnection[] = [];

  before(async () => {
    server = await startNats({ maxPayload: MAX_PAYLOAD });
    conns = await connectMembers(server.url, 5);
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await server?.stop();
  });

  for (const algorithm of ['shard-owner', 'ring', 'hierarchical'] as const) {
    it(`splits a 1 MiB vector into messages under the server's 64 KiB (${algorithm})`, async () => {
      const n = 3;
      const length = 262_144 + 5;
      const xs = randomGradients(n, length, 42);
      const members = memberIds(n);
      const key = { runId: 'chunks', step: 1, generation: algorithm === 'ring' ? 1 : 0 };
      const sizes: number[] = [];
      const spy = conns[4]!.subscribe(`lora.chunks.s1.g${key.generation}.*.>`, {
        callback: (_e, m) => {
          if (!m.subject.includes('.ctl.')) sizes.push(m.data.length);
        },
      });
      await conns[4]!.flush();
      const common = { ...key, members, observers: ['coord'], timeoutMs: 10_000, algorithm };
      const [results, observed] = await Promise.all([
        Promise.all(members.map((self, i) => allReduceSum({ ...common, nc: conns[i]!, self, data: xs[i]! }))),
        observeAllReduce({ ...common, nc: conns[3]!, self: 'coord', length }),
      ]);
      await conns[4]!.flush();
      spy.unsubscribe();
      for (const r of [...results, observed])
        assert.equal(Buffer.compare(bytesOf(r), bytesOf(results[0]!)), 0);
      assert.ok(worstErrorRatio(results[0]!, xs) <= 1);
      assert.ok(Math.max(...sizes) <= MAX_PAYLOAD, `a message of ${Math.max(...sizes)} bytes`);
      // Published bytes (DESIGN §4): shard-owner n·G (reduce-scatter (n-1)·G, fan-out G), ring 2(n-1)·G,
      // hierarchical on one node (no node names) as shard-owner: node reduce-scatter (n-1)·G, each
      // owner's final bytes once, G; plus one 44-byte header and a 32-byte tag per message. Every one crossed the server under 64 KiB.
      const G = 4 * length;
      const published = sizes.reduce((a, b) => a + b, 0) - FRAME_OVERHEAD * sizes.length;
      assert.equal(published, algorithm === 'ring' ? 2 * (n - 1) * G : n * G);
      assert.ok(sizes.length >= published / MAX_PAYLOAD);
    });
  }
});

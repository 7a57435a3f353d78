import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { Topology } from '../../src/collective/hierarchical-topology.ts';
import {
  AllReduceInputError,
  AllReduceTimeoutError,
  allReduceSum,
  observeAllReduce,
} from '../../src/collective/index.ts';
import { ctlSubject } from '../../src/collective/subjects.ts';
import { type LeafServers, startLeafServers } from './leaf-servers.ts';
import {
  bytesOf,
  connectMembers,
  hierarchicalSum,
  memberIds,
  randomGradients,
  worstErrorRatio,
} from './members.ts';
import { readiesOf, readyFrame, why } from './spy.ts';

describe('hierarchical topology', () => {
  it('gives every lane one handler per node and every atom one owner, for nodes of unequal size', () => {
    // Nodes named out of member order, of 3, 1 and 2 members.
    const nodes = ['b', 'a', 'b', 'c', 'b', 'c'];
    const t = new Topology(nodes);
    assert.deepEqual(t.nodeNames, ['a', 'b', 'c']);
    assert.deepEqual(t.nodeMembers, [[1], [0, 2, 4], [3, 5]]);
    assert.equal(t.lanes, 3);
    assert.equal(t.atoms, 9);
    for (let s = 0; s < t.atoms; s++) {
      // The owner sits on the atom's owner node and handles the atom's lane there.
      const owner = t.owner(s);
      assert.equal(t.nodeOf[owner], s % 3);
      assert.ok(t.atomsOf(owner).includes(s));
      // On every node exactly one member handles the atom.
      const atom = s;
      const handlers: number[] = t.nodeMembers.map(
        (ms) => ms.filter((m) => t.atomsOf(m).includes(atom)).length,
      );
      assert.deepEqual(handlers, [1, 1, 1]);
    }
    // Node c's two members split the three lanes (lanes 0 and 2 to its first member).
    assert.deepEqual(t.atomsOf(3), [0, 1, 2, 6, 7, 8]);
    assert.deepEqual(t.atomsOf(5), [3, 4, 5]);
  });
});

describe('hierarchical all-reduce through NATS leaf servers', () => {
  let servers: LeafServers;
  const conns: NatsConnection[] = [];
  let hub: NatsConnection | undefined;
  const n = 5;
  // m0, m2, m4 on node "zeta" (leaf 0), m1, m3 on node "alpha" (leaf 1); the observer on the hub.
  const nodes = memberIds(n).map((_, i) => (i % 2 === 0 ? 'zeta' : 'alpha'));
  before(async () => {
    servers = await startLeafServers(2);
    for (let i = 0; i < n; i++) conns.push(...(await connectMembers(servers.leafUrls[i % 2]!, 1)));
    [hub] = await connectMembers(servers.hubUrl, 1);
  });
  after(async () => {
    await Promise.all([...conns, hub].map((c) => c?.close()));
    await servers?.stop();
  });

  it('gives every member and the observer the node-order sum, bitwise', async () => {
    const length = 70_001;
    const xs = randomGradients(n, length, 321);
    const members = memberIds(n);
    const common = {
      runId: 'leaf',
      step: 3,
      generation: 0,
      members,
      nodes,
      observers: ['coord'],
      timeoutMs: 20_000,
      algorithm: 'hierarchical' as const,
    };
    const [results, observed] = await Promise.all([
      Promise.all(members.map((self, i) => allReduceSum({ ...common, nc: conns[i]!, self, data: xs[i]! }))),
      observeAllReduce({ ...common, nc: hub!, self: 'coord', length }),
    ]);
    const expected = bytesOf(hierarchicalSum(xs, nodes));
    for (const r of [...results, observed]) assert.equal(Buffer.compare(bytesOf(r), expected), 0);
    assert.ok(worstErrorRatio(results[0]!, xs) <= 1);
  });

  it('refuses node names that are not one per member, naming both counts', async () => {
    await assert.rejects(
      allReduceSum({
        nc: conns[0]!,
        runId: 'r',
        step: 0,
        generation: 0,
        members: ['m0', 'm1'],
        nodes: ['a'],
        self: 'm0',
        data: Float32Array.of(1),
        timeoutMs: 1000,
        algorithm: 'hierarchical',
      }),
      (e) => e instanceof AllReduceInputError && /nodes names 1 nodes for 2 members/.test(e.message),
    );
  });

  it('names, after the deadline, the member whose part is missing on its node and the handler another node waits for', async () => {
    // m1, m3 on node alpha (node 0), m0, m2 on zeta (node 1): lane 0 is m1 and m0, lane 1 m3 and m2.
    const members = memberIds(4);
    const four = nodes.slice(0, 4);
    const xs = randomGradients(4, 4000, 5);
    const key = { runId: 'leaf', step: 4, generation: 0 };
    const waitReady = await readiesOf(hub!, key, [0, 1, 2]);
    const settled = Promise.allSettled(
      [0, 1, 2].map((i) =>
        allReduceSum({
          ...key,
          nc: conns[i]!,
          members,
          nodes: four,
          self: members[i]!,
          data: xs[i]!,
          timeoutMs: 1500,
          algorithm: 'hierarchical',
        }),
      ),
    );
    await waitReady();
    // m3 "joins" the barrier (from the cluster server) but never subscribes or sends.
    hub!.publish(ctlSubject(key, 3), readyFrame(key, 3));
    const errors = (await settled).map((r) => {
      assert.ok(r.status === 'rejected' && r.reason instanceof AllReduceTimeoutError, why(r));
      return r.reason as AllReduceTimeoutError;
    });
    const scatter = (e: AllReduceTimeoutError) => [
      ...new Set(e.missing.filter((p) => p.phase === 'reduce-scatter').map((p) => p.member)),
    ];
    // m1 misses m3's part on their node; m2 misses the lane-1 partial m3 should send across nodes;
    // m0 misses the lane-0 partial from alpha's handler m1, who is stuck waiting for m3.
    assert.deepEqual(scatter(errors[1]!), ['m3']);
    assert.deepEqual(scatter(errors[2]!), ['m3']);
    assert.deepEqual(scatter(errors[0]!), ['m1']);
  });
});

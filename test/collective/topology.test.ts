import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bytesOf, hierarchicalSum, sumInOrder } from './members.ts';
import { payloadBytes, sentOnce } from './netns.ts';
import { digestOf, gradientOf } from './topology-node.ts';
import { lastBarrier, measureTopology, nodeName, worstNode } from './topology-rig.ts';

// The hierarchy on a simulated multi-node network (netns.ts: namespaces, veth links shaped with tbf,
// a leaf nats-server per node; needs root, which CI has: no skip). Asserts on bytes each node's link
// carried (interface counters), which the algorithms fix, never on time (bench/all-reduce-topology.ts
// measures that). The payload a link must carry is the cost model's (docs/scale.md). The counters
// add each frame's headers (more frames when a loaded machine writes smaller pieces), the reverse
// direction's ACKs and any TCP retransmission; netns.ts takes those out (packets x headers, `ss`'s
// bytes_retrans), which leaves the NATS protocol's framing on top of the model: about 1-2%.
const OVERHEAD = 1.05;
const LENGTH = 262_144; // 1 MiB of float32
const G = 4 * LENGTH;

if (process.getuid?.() !== 0) {
  throw new Error('test/collective/topology.test.ts builds network namespaces and must run as root');
}

for (const [nodes, perNode] of [
  [4, 4],
  [8, 4],
] as const) {
  describe(`all-reduce on ${nodes} simulated nodes x ${perNode} members`, () => {
    it('hierarchical: every member holds the documented sum; per node link ~G out and 2(N-1)/N·G in, flat several times that', async () => {
      const n = nodes * perNode;
      const seed = nodes;
      const results = await measureTopology({
        nodes,
        perNode,
        length: LENGTH,
        mbit: 400,
        // Two measured rounds: a node's figure is its smaller one, so a transient on a loaded machine
        // (a burst of retransmissions the counters missed) does not count as the algorithm's bytes,
        // while bytes the algorithm sends every round still do.
        rounds: 2,
        seed,
        // The diagnostics' sampling (bench/all-reduce-topology-timeline.ts), checked below.
        sampleMs: 50,
        cases: [
          { label: 'flat', algorithm: 'shard-owner', via: 'hub' },
          { label: 'hierarchical', algorithm: 'hierarchical', via: 'leaf' },
        ],
      });
      const [flat, hier] = results as [(typeof results)[0], (typeof results)[0]];
      // Bytes: the independent float32 sums in each algorithm's documented order.
      const xs = Array.from({ length: n }, (_, i) => gradientOf(seed, LENGTH, i));
      const all = xs.map((_, i) => i);
      const nodeNames = all.map((i) => nodeName(i, perNode));
      assert.equal(flat.digest, digestOf(sumInOrder(xs, all)), 'flat: not the member-order sum');
      assert.equal(
        hier.digest,
        digestOf(hierarchicalSum(xs, nodeNames)),
        'hierarchical: not the node-order sum',
      );
      assert.notEqual(
        Buffer.compare(bytesOf(sumInOrder(xs, all)), bytesOf(hierarchicalSum(xs, nodeNames))),
        0,
        'the data must tell the two orders apart',
      );

      // Hierarchical: a node sends its partial of the other nodes' atoms and its owned atoms' final
      // bytes once, G; it receives the other nodes' partials of its atoms and their final bytes.
      const hierOut = G;
      const hierIn = (2 * (nodes - 1) * G) / nodes;
      // Flat, members straight on the cluster server: each member sends G and receives 2(n-1)/n·G.
      const flatOut = perNode * G;
      const flatIn = (perNode * 2 * (n - 1) * G) / n;
      for (const [label, r, out, inn] of [
        ['hierarchical', hier, hierOut, hierIn],
        ['flat', flat, flatOut, flatIn],
      ] as const) {
        for (const j of r.bytes[0]!.keys()) {
          const fewest = (way: 'tx' | 'rx') =>
            r.bytes.map((round) => round[j]!).reduce((a, b) => (sentOnce(b, way) < sentOnce(a, way) ? b : a));
          const [outLink, inLink] = [fewest('tx'), fewest('rx')];
          const [tx, rx] = [sentOnce(outLink, 'tx'), sentOnce(inLink, 'rx')];
          const link = {
            ...outLink,
            rx: inLink.rx,
            rxPackets: inLink.rxPackets,
            rxRetrans: inLink.rxRetrans,
          };
          const at =
            `${label}, node ${j}: out ${tx} B sent once (${link.tx} B, ${link.txPackets} frames, ` +
            `${payloadBytes(link, 'tx')} B payload, ${link.txRetrans} B resent), in ${rx} B (${link.rx} B, ` +
            `${link.rxPackets} frames, ${payloadBytes(link, 'rx')} B payload, ${link.rxRetrans} B resent)`;
          assert.ok(tx >= out && tx <= out * OVERHEAD, `${at}; the model says ${out} out`);
          assert.ok(rx >= inn && rx <= inn * OVERHEAD, `${at}; the model says ${inn} in`);
        }
        // The sampled counters (hub side, /proc/PID/net/dev) see each node's own direction: within
        // the round they saw at least the model's bytes and at most what the node's veth counted.
        r.timelines.forEach((tl, k) => {
          const [first, last] = [tl.samples[0]!, tl.samples.at(-1)!];
          for (const [j, l] of first.links.entries()) {
            const [tx, rx] = [last.links[j]!.tx - l.tx, last.links[j]!.rx - l.rx];
            const at = `${label}, round ${k}, node ${j}: sampled ${tx} B out, ${rx} B in`;
            assert.ok(tx >= out && tx <= r.bytes[k]![j]!.tx, `${at}; counted ${r.bytes[k]![j]!.tx} out`);
            assert.ok(rx >= inn && rx <= r.bytes[k]![j]!.rx, `${at}; counted ${r.bytes[k]![j]!.rx} in`);
          }
          const barrier = lastBarrier(tl);
          assert.ok(barrier > tl.t0 && barrier < tl.t1, `${label}, round ${k}: barrier outside the round`);
        });
      }
      // The target: cross-node bytes per node at most 2G each way, on the raw counters.
      assert.ok(worstNode(hier, 'tx') <= 2 * G && worstNode(hier, 'rx') <= 2 * G);
      assert.ok(worstNode(flat, 'rx') > 3 * worstNode(hier, 'rx'));
    });
  });
}

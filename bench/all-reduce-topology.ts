// The all-reduce on a simulated multi-node network (needs root): one network namespace per node
// with its own NATS leaf server, veth links to a hub namespace shaped with tbf so the links, not
// the CPUs, are the bottleneck (test/collective/netns.ts). For 4 x 4 and 8 x 4 members: each node
// link's bytes from its interface counters and the round time, for flat shard-owner with members
// straight on the cluster server (the chart without nats.leaf), shard-owner through the leaf
// servers, and hierarchical, against the link's lower bound 2(N-1)/N·G / rate. One node's members
// share a process (docs/scale.md, "All-reduce cost model"). LORA_MPT_TOPO_MIB (gradient, default 4)
// and LORA_MPT_TOPO_MBIT (link rate, default 25) change the size; LORA_MPT_TOPO_ONLY=hierarchical
// runs that case alone (below ~20 Mbit/s the flat cases' bursts outlast nats-server's write
// deadline and it drops the member as a slow consumer).
import { loadavg } from 'node:os';
import {
  type CaseResult,
  measureTopology,
  type TopologyCase,
  worstNode,
} from '../test/collective/topology-rig.ts';

const MiB = 2 ** 20;
const CASES: readonly TopologyCase[] = [
  { label: 'flat (shard-owner, members on the cluster server)', algorithm: 'shard-owner', via: 'hub' },
  { label: 'shard-owner through leaf servers', algorithm: 'shard-owner', via: 'leaf' },
  { label: 'hierarchical through leaf servers', algorithm: 'hierarchical', via: 'leaf' },
];

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

export async function run(): Promise<void> {
  const mib = Number(process.env.LORA_MPT_TOPO_MIB ?? 4);
  const mbit = Number(process.env.LORA_MPT_TOPO_MBIT ?? 25);
  const G = mib * MiB;
  for (const [nodes, perNode] of [
    [4, 4],
    [8, 4],
  ] as const) {
    const only = process.env.LORA_MPT_TOPO_ONLY;
    const cases = only === undefined ? CASES : CASES.filter((c) => c.algorithm === only && c.via === 'leaf');
    const results = await measureTopology({
      nodes,
      perNode,
      length: G / 4,
      mbit,
      rounds: 2,
      seed: 7,
      cases,
    });
    const boundMs = ((((2 * (nodes - 1)) / nodes) * G * 8) / (mbit * 1e6)) * 1000;
    console.log(
      `\n${nodes} nodes x ${perNode} members, G = ${mib} MiB, links ${mbit} Mbit/s each way (tbf); ` +
        `bound 2(N-1)/N·G / rate = ${boundMs.toFixed(0)} ms; loadavg ${load()}`,
    );
    console.log(
      '  algorithm                                           | link out / G | link in / G | round ms | / bound',
    );
    const line = (r: CaseResult) => {
      const ms = median(r.ms);
      console.log(
        `  ${r.c.label.padEnd(52)}| ${(worstNode(r, 'tx') / G).toFixed(2).padStart(12)} | ${(worstNode(r, 'rx') / G).toFixed(2).padStart(11)} | ${ms.toFixed(0).padStart(8)} | ${(ms / boundMs).toFixed(2)}`,
      );
      return ms;
    };
    const times = results.map(line);
    if (only !== undefined) continue;
    const [flat, , hier] = times as [number, number, number];
    console.log(
      `all-reduce-topology ${nodes}x${perNode}: flat/hierarchical round time ${(flat / hier).toFixed(2)}, ` +
        `hierarchical ${(hier / boundMs).toFixed(2)}x its bound, cross-node bytes per node ${(
          Math.max(worstNode(results[2]!, 'tx'), worstNode(results[2]!, 'rx')) / G
        ).toFixed(2)} G (loadavg ${load()})`,
    );
  }
}

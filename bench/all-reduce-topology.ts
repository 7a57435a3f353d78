// The all-reduce on a simulated multi-node network (needs root): one network namespace per node
// with its own NATS leaf server, veth links to a hub namespace shaped with tbf so the links, not
// the CPUs, are the bottleneck (test/collective/netns.ts). For 4 x 4 and 8 x 4 members: each node
// link's bytes from its interface counters and the round time, for flat shard-owner with members
// straight on the cluster server (the chart without nats.leaf), shard-owner through the leaf
// servers, and hierarchical, against the link's lower bound 2(N-1)/N·G / rate. One node's members
// share a process (docs/scale.md, "All-reduce cost model"). LORA_MPT_TOPO_MIB (gradient, default 4)
// and LORA_MPT_TOPO_MBIT (links of this side-by-side, default 25) change the size;
// LORA_MPT_TOPO_ONLY=hierarchical runs that case alone (below ~20 Mbit/s the flat cases' bursts
// outlast nats-server's write deadline and it drops the member as a slow consumer). Then
// hierarchical alone against its bound at LORA_MPT_TOPO_BOUND_MBIT (default 5: there the links, not
// the 2 loaded CPUs, set the time), with the servers' 1 MiB frames and with
// LORA_MPT_TOPO_MAX_PAYLOAD-byte frames (default 32 KiB, see run()). Besides the round time (request
// to last answer) it prints the time after the last member passed the ready barrier: the barrier
// moves no gradient bytes, so the link bound does not include it (bench/all-reduce-topology-timeline.ts
// shows where the rest goes).
import { loadavg } from 'node:os';
import {
  type CaseResult,
  lastBarrier,
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

/** One topology, `cases` at `mbit`; prints a table and returns the median round times. */
async function measure(
  nodes: number,
  perNode: number,
  G: number,
  mbit: number,
  cases: readonly TopologyCase[],
  maxPayload: number | undefined,
): Promise<{ results: CaseResult[]; times: number[]; boundMs: number }> {
  const results = await measureTopology({
    nodes,
    perNode,
    length: G / 4,
    mbit,
    rounds: 2,
    seed: 7,
    cases,
    // Counters sampled and members' first frames noted (cheap): the barrier's share of the round.
    sampleMs: 100,
    ...(maxPayload === undefined ? {} : { maxPayload }),
  });
  const boundMs = ((((2 * (nodes - 1)) / nodes) * G * 8) / (mbit * 1e6)) * 1000;
  const frames = maxPayload === undefined ? "the servers' max_payload, 1 MiB" : `${maxPayload / 1024} KiB`;
  console.log(
    `\n${nodes} nodes x ${perNode} members, G = ${G / MiB} MiB, links ${mbit} Mbit/s each way (tbf), frames of ` +
      `at most ${frames}; bound 2(N-1)/N·G / rate = ${boundMs.toFixed(0)} ms; loadavg ${load()}`,
  );
  console.log(
    '  algorithm                                           | link out / G | link in / G | round ms | / bound | after barrier ms | / bound',
  );
  const times = results.map((r) => {
    const ms = median(r.ms);
    const after = median(r.timelines.map((tl) => tl.t1 - lastBarrier(tl)));
    console.log(
      `  ${r.c.label.padEnd(52)}| ${(worstNode(r, 'tx') / G).toFixed(2).padStart(12)} | ${(worstNode(r, 'rx') / G).toFixed(2).padStart(11)} | ${ms.toFixed(0).padStart(8)} | ${(ms / boundMs).toFixed(2).padStart(7)} | ${after.toFixed(0).padStart(16)} | ${(after / boundMs).toFixed(2)}`,
    );
    return ms;
  });
  return { results, times, boundMs };
}

export async function run(): Promise<void> {
  const mib = Number(process.env.LORA_MPT_TOPO_MIB || 4);
  const mbit = Number(process.env.LORA_MPT_TOPO_MBIT || 25);
  const boundMbit = Number(process.env.LORA_MPT_TOPO_BOUND_MBIT || 5);
  const smallFrames = Number(process.env.LORA_MPT_TOPO_MAX_PAYLOAD || 32 * 1024);
  const only = process.env.LORA_MPT_TOPO_ONLY;
  const G = mib * MiB;
  const topologies = [
    [4, 4],
    [8, 4],
  ] as const;
  for (const [nodes, perNode] of topologies) {
    const cases = only === undefined ? CASES : CASES.filter((c) => c.algorithm === only && c.via === 'leaf');
    const { results, times, boundMs } = await measure(nodes, perNode, G, mbit, cases, undefined);
    if (only !== undefined) continue;
    const [flat, , hier] = times as [number, number, number];
    console.log(
      `all-reduce-topology ${nodes}x${perNode}: flat/hierarchical round time ${(flat / hier).toFixed(2)}, ` +
        `hierarchical ${(hier / boundMs).toFixed(2)}x its bound, cross-node bytes per node ${(
          Math.max(worstNode(results[2]!, 'tx'), worstNode(results[2]!, 'rx')) / G
        ).toFixed(2)} G (loadavg ${load()})`,
    );
  }
  // Against its bound: hierarchical alone on links slow enough that they, not the 2 CPUs, set the
  // time, with the servers' 1 MiB frames (a 4 MiB gradient's atoms are then whole 128-256 KiB
  // frames: each crosses a link in 0.2-0.4 s at 5 Mbit/s, 2-4% of the round, before the hub can
  // forward it) and with small frames, whose time on the link is as small a part of the round as a
  // 1 MiB frame's in a 134 MB gradient's round on 25 Gbit/s links (docs/scale.md).
  for (const [nodes, perNode] of topologies) {
    const hier = CASES.filter((c) => c.algorithm === 'hierarchical');
    for (const frames of [undefined, smallFrames]) {
      const { times, boundMs } = await measure(nodes, perNode, G, boundMbit, hier, frames);
      const size = frames === undefined ? '1 MiB' : `${frames / 1024} KiB`;
      console.log(
        `all-reduce-topology ${nodes}x${perNode} at ${boundMbit} Mbit/s, frames <= ${size}: hierarchical ` +
          `${(times[0]! / boundMs).toFixed(2)}x its bound (loadavg ${load()})`,
      );
    }
  }
}

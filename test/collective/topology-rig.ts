// Runs all-reduce rounds on a simulated cluster (netns.ts): one process per node holding that node's
// members, connected to the node's leaf server or, for the flat baseline, straight to the hub
// across the node's link. Per round: each node link's bytes from its interface counters, the wall
// time from the request to the last node's answer, and the result's digest on every member.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Peer } from '../../bench/support/peer.ts';
import type { AllReduceAlgorithm } from '../../src/collective/index.ts';
import { type LinkBytes, SimulatedNetwork } from './netns.ts';
import { epochMs, type RoundTrace } from './round-trace.ts';
import type { NodeArgs } from './topology-node.ts';

const NODE = fileURLToPath(new URL('./topology-node.ts', import.meta.url));

export interface TopologyCase {
  readonly label: string;
  readonly algorithm: AllReduceAlgorithm;
  /** Members' server: their node's leaf server, or the cluster server across the link. */
  readonly via: 'leaf' | 'hub';
}

export interface TopologyOptions {
  readonly nodes: number;
  readonly perNode: number;
  /** float32 elements of the gradient. */
  readonly length: number;
  readonly mbit: number;
  /** Measured rounds per case, after one warm-up round. */
  readonly rounds: number;
  readonly seed: number;
  readonly cases: readonly TopologyCase[];
  /**
   * Diagnostics (bench/all-reduce-topology-timeline.ts): sample every node's link counters every
   * `sampleMs` during each measured round and collect each member's phase times (round-trace.ts).
   */
  readonly sampleMs?: number;
  /** Largest frame the members send (RoundOptions.maxPayload); the servers' 1 MiB when absent. */
  readonly maxPayload?: number;
}

/** What one measured round looked like over time; times are epoch ms (round-trace.ts). */
export interface RoundTimeline {
  /** When the rig sent the request, and when the last node answered. */
  readonly t0: number;
  readonly t1: number;
  /** Counter samples: time, and per node its link's tx and rx bytes so far. */
  readonly samples: readonly { t: number; links: readonly { tx: number; rx: number }[] }[];
  /** Per node, per member of it: when allReduceSum resolved, and its phase spans. */
  readonly done: readonly (readonly number[])[];
  readonly traces: readonly (readonly RoundTrace[])[];
}

export interface CaseResult {
  readonly c: TopologyCase;
  /** Per measured round, per node. */
  readonly bytes: readonly (readonly LinkBytes[])[];
  readonly ms: readonly number[];
  /** The one digest every member of every round ended with. */
  readonly digest: string;
  /** Per measured round, when `sampleMs` was given. */
  readonly timelines: readonly RoundTimeline[];
}

export const memberName = (i: number): string => `w${String(i).padStart(3, '0')}`;
/** Member i sits on node floor(i / perNode): names sort in node order, as a cluster's usually do. */
export const nodeName = (i: number, perNode: number): string => `node${Math.floor(i / perNode)}`;

export async function measureTopology(o: TopologyOptions): Promise<CaseResult[]> {
  const n = o.nodes * o.perNode;
  const members = Array.from({ length: n }, (_, i) => memberName(i));
  const nodes = members.map((_, i) => nodeName(i, o.perNode));
  const frameKeyHex = randomBytes(32).toString('hex');
  const net = await SimulatedNetwork.create({ nodes: o.nodes, mbit: o.mbit });
  const peers: Peer[] = [];
  try {
    const out: CaseResult[] = [];
    for (const c of o.cases) {
      const started = await Promise.all(
        Array.from({ length: o.nodes }, (_, j) => {
          const args: NodeArgs = {
            url: c.via === 'leaf' ? net.leafUrl(j) : net.hubUrl(j),
            frameKeyHex,
            members,
            nodes,
            mine: Array.from({ length: o.perNode }, (_, k) => j * o.perNode + k),
            length: o.length,
            seed: o.seed,
            trace: o.sampleMs !== undefined,
            ...(o.maxPayload === undefined ? {} : { maxPayload: o.maxPayload }),
          };
          return Peer.start(`node ${j}`, 'ip', [
            'netns',
            'exec',
            net.nodeNs[j]!,
            process.execPath,
            '--import',
            'tsx',
            NODE,
            JSON.stringify(args),
          ]);
        }),
      );
      for (const p of started) if (typeof p !== 'string') peers.push(p);
      const failed = started.find((p): p is string => typeof p === 'string');
      if (failed !== undefined) throw new Error(failed);
      const nodePeers = started as Peer[];
      const digests = new Set<string>();
      const bytes: LinkBytes[][] = [];
      const ms: number[] = [];
      const timelines: RoundTimeline[] = [];
      for (let g = 0; g <= o.rounds; g++) {
        const before = net.nodeNs.map((_, j) => net.linkBytes(j));
        const samples: RoundTimeline['samples'][number][] = [];
        const sample = () => samples.push({ t: epochMs(), links: net.sampleLinks() });
        const sampler = o.sampleMs === undefined ? undefined : setInterval(sample, o.sampleMs);
        if (sampler) sample();
        const t0 = performance.now();
        const e0 = epochMs();
        const replies = await Promise.all(nodePeers.map((p) => p.request(`reduce ${c.algorithm} ${g}`)));
        const wall = performance.now() - t0;
        if (sampler) {
          clearInterval(sampler);
          sample();
          if (g > 0) {
            timelines.push({
              t0: e0,
              t1: e0 + wall,
              samples,
              done: replies.map((r) => r.done as number[]),
              traces: replies.map((r) => r.traces as RoundTrace[]),
            });
          }
        }
        const after = net.nodeNs.map((_, j) => net.linkBytes(j));
        for (const r of replies) digests.add(String(r.digest));
        if (g === 0) continue; // warm-up: connections, JIT, leaf interest
        ms.push(wall);
        bytes.push(
          after.map((a, j) => ({
            tx: a.tx - before[j]!.tx,
            rx: a.rx - before[j]!.rx,
            txPackets: a.txPackets - before[j]!.txPackets,
            rxPackets: a.rxPackets - before[j]!.rxPackets,
            txRetrans: a.txRetrans - before[j]!.txRetrans,
            rxRetrans: a.rxRetrans - before[j]!.rxRetrans,
          })),
        );
      }
      if (digests.size !== 1)
        throw new Error(`${c.label}: members ended with different bytes: ${[...digests]}`);
      for (const p of nodePeers) p.stop();
      await Promise.all(nodePeers.map((p) => p.exited()));
      peers.length = 0;
      out.push({ c, bytes, ms, digest: [...digests][0]!, timelines });
    }
    return out;
  } finally {
    for (const p of peers) p.kill();
    await Promise.all(peers.map((p) => p.exited()));
    net.close();
  }
}

/**
 * When the last member passed the ready barrier (epoch ms): its first data frame out, which its
 * start() publishes at once. Before that a round moves only control frames and subscriptions.
 */
export function lastBarrier(tl: RoundTimeline): number {
  let last = tl.t0;
  for (const tr of tl.traces.flat()) {
    const firsts = Object.entries(tr)
      .filter(([k]) => k.startsWith('out:') && k !== 'out:ctl')
      .map(([, v]) => v.first);
    if (firsts.length > 0) last = Math.max(last, Math.min(...firsts));
  }
  return last;
}

/** Largest per-node mean over the measured rounds of `which` bytes. */
export function worstNode(r: CaseResult, which: keyof LinkBytes): number {
  const nodes = r.bytes[0]!.length;
  let worst = 0;
  for (let j = 0; j < nodes; j++) {
    const mean = r.bytes.reduce((t, round) => t + round[j]![which], 0) / r.bytes.length;
    worst = Math.max(worst, mean);
  }
  return worst;
}

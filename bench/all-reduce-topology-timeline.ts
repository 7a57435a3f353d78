// Where a hierarchical round's time goes on the simulated network (needs root; netns.ts): one round
// of N nodes x m members after a warm-up, every node link's tx/rx counters sampled every 20 ms from
// the hub's /proc/PID/net/dev (no exec per sample), and each member's phase times from a wrapper
// around its NATS connection (test/collective/round-trace.ts). Prints the link timeline in bins,
// the members' phases (ready barrier, node reduce-scatter out, partials out/in, finals out/in, done)
// and per node how long its in-link (the one that sets the bound) idled after the barrier.
// LORA_MPT_TOPO_NODES (4), LORA_MPT_TOPO_PER_NODE (4), LORA_MPT_TOPO_MIB (4), LORA_MPT_TOPO_MBIT
// (5), LORA_MPT_TOPO_BIN_MS (500) set the case.
import { loadavg } from 'node:os';
import type { RoundTrace } from '../test/collective/round-trace.ts';
import { lastBarrier, measureTopology, type RoundTimeline } from '../test/collective/topology-rig.ts';

const MiB = 2 ** 20;
const num = (name: string, dflt: number) => Number(process.env[name] || dflt);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const s = (ms: number) => (ms / 1000).toFixed(2).padStart(6);

/** The link timeline: per bin, per node, Mbit/s out and in. */
function printLinks(tl: RoundTimeline, binMs: number, mbit: number): void {
  const nodes = tl.samples[0]!.links.length;
  console.log(`  link Mbit/s per ${binMs} ms bin (node: out/in), rate ${mbit}; t from the request`);
  const at = (t: number) => {
    // Counters at time t, linearly between the samples around it.
    const xs = tl.samples;
    let k = 1;
    while (k < xs.length - 1 && xs[k]!.t < t) k++;
    const [a, b] = [xs[k - 1]!, xs[k]!];
    const f = b.t === a.t ? 1 : Math.min(1, Math.max(0, (t - a.t) / (b.t - a.t)));
    return a.links.map((l, j) => ({
      tx: l.tx + f * (b.links[j]!.tx - l.tx),
      rx: l.rx + f * (b.links[j]!.rx - l.rx),
    }));
  };
  for (let t = tl.t0; t < tl.t1; t += binMs) {
    const [p, q] = [at(t), at(Math.min(t + binMs, tl.t1))];
    const dt = (Math.min(t + binMs, tl.t1) - t) / 1000;
    const cells = Array.from({ length: nodes }, (_, j) => {
      const mb = (bytes: number) => ((bytes * 8) / 1e6 / dt).toFixed(1).padStart(4);
      return `${mb(q[j]!.tx - p[j]!.tx)}/${mb(q[j]!.rx - p[j]!.rx)}`;
    });
    console.log(`  ${s(t - tl.t0)} | ${cells.join(' ')}`);
  }
}

const PHASES: readonly [string, string][] = [
  ['first ready out', 'first:out:ctl'],
  ['last ready in', 'last:in:ctl'],
  ['barrier (first data out)', 'first:out:*'],
  ['node reduce-scatter out done', 'last:out:hrs'],
  ['node reduce-scatter in done', 'last:in:hrs'],
  ['first partial out', 'first:out:hxrs'],
  ['last partial out', 'last:out:hxrs'],
  ['first partial in', 'first:in:hxrs'],
  ['last partial in', 'last:in:hxrs'],
  ['first final out', 'first:out:hxag'],
  ['last final out', 'last:out:hxag'],
  ['last final in (cluster)', 'last:in:hxag'],
  ['last final in (node)', 'last:in:hag'],
];

function phaseTime(tr: RoundTrace, what: string): number | undefined {
  const [edge, way, phase] = what.split(':') as ['first' | 'last', string, string];
  if (phase === '*') {
    const firsts = Object.entries(tr)
      .filter(([k]) => k.startsWith(`${way}:`) && k !== `${way}:ctl`)
      .map(([, v]) => v.first);
    return firsts.length ? Math.min(...firsts) : undefined;
  }
  return tr[`${way}:${phase}`]?.[edge];
}

/** Each phase: earliest and latest member, seconds from the request. */
function printPhases(tl: RoundTimeline): void {
  const traces = tl.traces.flat();
  const done = tl.done.flat();
  console.log('  member phases, s from the request: earliest member .. latest member');
  for (const [label, what] of PHASES) {
    const ts = traces.map((tr) => phaseTime(tr, what)).filter((t): t is number => t !== undefined);
    if (ts.length === 0) continue;
    console.log(`  ${label.padEnd(32)} ${s(Math.min(...ts) - tl.t0)} .. ${s(Math.max(...ts) - tl.t0)}`);
  }
  console.log(`  ${'done'.padEnd(32)} ${s(Math.min(...done) - tl.t0)} .. ${s(Math.max(...done) - tl.t0)}`);
}

/** Per node: its in-link's bytes, and how long it idled between the last barrier and the end. */
function printIdle(tl: RoundTimeline, mbit: number): void {
  const barrier = lastBarrier(tl);
  const [first, last] = [tl.samples[0]!, tl.samples.at(-1)!];
  const span = (tl.t1 - barrier) / 1000;
  console.log(
    `  after the last member's barrier (${s(barrier - tl.t0)} s) the round ran ${span.toFixed(2)} s; per node in-link:`,
  );
  first.links.forEach((l, j) => {
    const rx = last.links[j]!.rx - l.rx;
    const busy = (rx * 8) / (mbit * 1e6);
    console.log(
      `  node ${j}: in ${(rx / MiB).toFixed(2)} MiB = ${busy.toFixed(2)} s at the rate, idle ${(span - busy).toFixed(2)} s`,
    );
  });
}

export async function run(): Promise<void> {
  const nodes = num('LORA_MPT_TOPO_NODES', 4);
  const perNode = num('LORA_MPT_TOPO_PER_NODE', 4);
  const mib = num('LORA_MPT_TOPO_MIB', 4);
  const mbit = num('LORA_MPT_TOPO_MBIT', 5);
  const binMs = num('LORA_MPT_TOPO_BIN_MS', 500);
  const G = mib * MiB;
  const [r] = await measureTopology({
    nodes,
    perNode,
    length: G / 4,
    mbit,
    rounds: 1,
    seed: 7,
    cases: [{ label: 'hierarchical', algorithm: 'hierarchical', via: 'leaf' }],
    sampleMs: 20,
    ...(process.env.LORA_MPT_TOPO_MAX_PAYLOAD ? { maxPayload: num('LORA_MPT_TOPO_MAX_PAYLOAD', 0) } : {}),
  });
  const tl = r!.timelines[0]!;
  const boundMs = ((((2 * (nodes - 1)) / nodes) * G * 8) / (mbit * 1e6)) * 1000;
  console.log(
    `\nhierarchical, ${nodes} nodes x ${perNode} members, G = ${mib} MiB, ${mbit} Mbit/s: round ` +
      `${s(tl.t1 - tl.t0)} s, bound ${s(boundMs)} s (loadavg ${load()})`,
  );
  printLinks(tl, binMs, mbit);
  printPhases(tl);
  printIdle(tl, mbit);
}

// Child process of the simulated cluster (topology-rig.ts): the members of one simulated node, each
// with its own NATS connection to URL (its node's leaf server, or the hub for the flat baseline).
// Members of a node share this process: 32 member processes would make the 2 CPUs, not the links,
// the bottleneck. Argument: one JSON object (NodeArgs). One JSON line per stdin request
// (bench/support/peer.ts): `reduce ALGORITHM GENERATION` -> {ms, digest} once every member is done.
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { connect } from '@nats-io/transport-node';
import { allReduceSum, isAllReduceAlgorithm } from '../../src/collective/index.ts';
import { randomGradients } from './members.ts';
import { epochMs, TracedConnection } from './round-trace.ts';

export interface NodeArgs {
  readonly url: string;
  readonly frameKeyHex: string;
  /** Every member of the round and its node name (the coordinator's ReduceStart). */
  readonly members: readonly string[];
  readonly nodes: readonly string[];
  /** Indices of the members this process runs. */
  readonly mine: readonly number[];
  readonly length: number;
  readonly seed: number;
  /** Largest frame (RoundOptions.maxPayload); the leaf servers' max_payload when absent. */
  readonly maxPayload?: number;
  /** Note each member's phase times (round-trace.ts) and send them with every answer. */
  readonly trace?: boolean;
}

/** Member `i`'s gradient: the same on the parent, which computes the reference sum. */
export const gradientOf = (seed: number, length: number, i: number): Float32Array =>
  randomGradients(1, length, seed * 1000 + i)[0]!;

export const digestOf = (x: Float32Array): string =>
  createHash('sha256')
    .update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength))
    .digest('hex')
    .slice(0, 16);

async function main(a: NodeArgs): Promise<void> {
  const frameKey = Buffer.from(a.frameKeyHex, 'hex');
  const data = a.mine.map((i) => gradientOf(a.seed, a.length, i));
  const conns = await Promise.all(a.mine.map(() => connect({ servers: a.url })));
  const traced = a.trace ? conns.map((nc) => new TracedConnection(nc)) : undefined;
  // One wrapper per connection for good: frame buffers are pooled per connection object.
  const ncs = traced?.map((t) => t.connection()) ?? conns;
  console.log(JSON.stringify({ ready: true }));
  for await (const line of createInterface({ input: process.stdin })) {
    const [what, algorithm, gen] = line.trim().split(' ');
    if (what !== 'reduce' || !isAllReduceAlgorithm(algorithm)) throw new Error(`unknown request ${line}`);
    const t0 = performance.now();
    const start = epochMs();
    for (const t of traced ?? []) t.trace = {};
    const done: number[] = [];
    const results = await Promise.all(
      a.mine.map((i, k) =>
        allReduceSum({
          nc: ncs[k]!,
          runId: 'topo',
          step: 1,
          generation: Number(gen),
          members: a.members,
          nodes: a.nodes,
          self: a.members[i]!,
          data: data[k]!,
          algorithm,
          frameKey,
          timeoutMs: 300_000,
          ...(a.maxPayload === undefined ? {} : { maxPayload: a.maxPayload }),
        }).then((r) => {
          done[k] = epochMs();
          return r;
        }),
      ),
    );
    const digests = [...new Set(results.map(digestOf))];
    const ms = performance.now() - t0;
    const traces = traced?.map((t) => t.trace);
    console.log(JSON.stringify({ ms, digest: digests.join(','), start, done, traces }));
  }
  await Promise.all(conns.map((c) => c.close()));
}

if (process.argv[2]) await main(JSON.parse(process.argv[2]) as NodeArgs);

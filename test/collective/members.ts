// Test helpers for the all-reduce: member connections to a real nats-server, seeded random
// gradients whose float32 sum depends on the summation order, and independent reference sums.
import { after, before } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type AllReduceOptions, allReduceSum } from '../../src/collective/index.ts';
import type { RoundKey } from '../../src/collective/subjects.ts';
import { type NatsServer, startNats } from '../support/nats.ts';

/** One connection per member, reconnecting quickly so restart tests stay short. */
export function connectMembers(url: string, n: number): Promise<NatsConnection[]> {
  return Promise.all(
    Array.from({ length: n }, () =>
      connect({ servers: url, reconnectTimeWait: 50, maxReconnectAttempts: -1 }),
    ),
  );
}

export const memberIds = (n: number): string[] => Array.from({ length: n }, (_, i) => `m${i}`);

/** Seeded (mulberry32) values spread over 2^-20..2^20 with both signs: sums depend on the order. */
export function randomGradients(n: number, length: number, seed: number): Float32Array[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return Array.from({ length: n }, () =>
    Float32Array.from({ length }, () => (rand() < 0.5 ? -1 : 1) * 2 ** (40 * rand() - 20) * (1 + rand())),
  );
}

/** Elementwise float32 sum in the given member order (each addition rounded to float32). */
export function sumInOrder(
  xs: readonly Float32Array[],
  order: readonly number[],
  lo = 0,
  hi?: number,
): Float32Array {
  const end = hi ?? xs[0]!.length;
  const out = Float32Array.from(xs[order[0]!]!.subarray(lo, end));
  for (const m of order.slice(1)) {
    const x = xs[m]!;
    for (let i = 0; i < out.length; i++) out[i] = Math.fround(out[i]! + x[lo + i]!);
  }
  return out;
}

// Hierarchical: node partials in member order, then the nodes (sorted by name) in order. The layout
// has lanes·nodes shards, but every shard is summed in that same order, so the shards' bounds do
// not change the bytes.
export function hierarchicalSum(xs: readonly Float32Array[], nodes: readonly string[]): Float32Array {
  const names = [...new Set(nodes)].sort();
  const partials = names.map((name) =>
    sumInOrder(
      xs,
      xs.map((_, i) => i).filter((i) => nodes[i] === name),
    ),
  );
  const out = Float32Array.from(partials[0]!);
  for (const p of partials.slice(1))
    for (let i = 0; i < out.length; i++) out[i] = Math.fround(out[i]! + p[i]!);
  return out;
}

/** Largest |float32 result - float64 sum| relative to the allowed (n-1)·2^-23·Σ|x| bound; <= 1 passes. */
export function worstErrorRatio(result: Float32Array, xs: readonly Float32Array[]): number {
  let worst = 0;
  for (let i = 0; i < result.length; i++) {
    let exact = 0;
    let abs = 0;
    for (const x of xs) {
      exact += x[i]!;
      abs += Math.abs(x[i]!);
    }
    const bound = (xs.length - 1) * 2 ** -23 * abs;
    const err = Math.abs(result[i]! - exact);
    if (err > 0) worst = Math.max(worst, bound > 0 ? err / bound : Number.POSITIVE_INFINITY);
  }
  return worst;
}

export const bytesOf = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

export interface ThreeMembers {
  readonly members: readonly string[];
  readonly xs: readonly Float32Array[];
  /** Set in `before`: the server, the members' connections and a spy connection. */
  server: NatsServer;
  conns: NatsConnection[];
  spy: NatsConnection;
  /** Member i's all-reduce of its seeded gradient (5 s deadline unless `extra` says otherwise). */
  reduce(i: number, key: RoundKey, extra?: Partial<AllReduceOptions>): Promise<Float32Array>;
}

/** The fault tests' rig: a real nats-server and three members, up before and closed after the calling describe. */
export function useThreeMembers(): ThreeMembers {
  const members = memberIds(3);
  const rig = {
    members,
    xs: randomGradients(3, 5000, 77),
    conns: [] as NatsConnection[],
    reduce: (i: number, key: RoundKey, extra: Partial<AllReduceOptions> = {}) =>
      allReduceSum({
        nc: rig.conns[i]!,
        ...key,
        members,
        self: members[i]!,
        data: rig.xs[i]!,
        timeoutMs: 5000,
        ...extra,
      }),
  } as unknown as ThreeMembers;
  before(async () => {
    rig.server = await startNats();
    rig.conns = await connectMembers(rig.server.url, 3);
    rig.spy = (await connectMembers(rig.server.url, 1))[0]!;
  });
  after(async () => {
    await Promise.all([...rig.conns, rig.spy].map((c) => c?.close()));
    await rig.server?.stop();
  });
  return rig;
}

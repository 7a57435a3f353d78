// Which NATS client for the gradient all-reduce: the maintained `@nats-io/transport-node` (v3) or
// the legacy `nats` (v2) package. Measures pub/sub throughput and request latency against one real
// nats-server on loopback, both clients interleaved in the same process (paired rounds).
import { connect as connectV3 } from '@nats-io/transport-node';
import { connect as connectV2 } from 'nats';
import { startNats } from '../test/support/nats.ts';

interface Conn {
  publish(subject: string, data: Uint8Array): void;
  subscribe(
    subject: string,
    opts?: { max?: number },
  ): AsyncIterable<{ data: Uint8Array; respond(d: Uint8Array): boolean }>;
  request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<{ data: Uint8Array }>;
  flush(): Promise<void>;
  close(): Promise<void>;
}
type Connect = (opts: { servers: string }) => Promise<Conn>;

const clients: ReadonlyArray<readonly [string, Connect]> = [
  ['@nats-io/transport-node', connectV3 as unknown as Connect],
  ['nats (v2)', connectV2 as unknown as Connect],
];

async function throughput(connect: Connect, url: string, size: number, count: number): Promise<number> {
  const pub = await connect({ servers: url });
  const sub = await connect({ servers: url });
  const subject = `bench.tp.${size}`;
  const s = sub.subscribe(subject, { max: count });
  await sub.flush();
  const done = (async () => {
    let n = 0;
    for await (const m of s) n += m.data.length;
    return n;
  })();
  const payload = new Uint8Array(size).fill(7);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) pub.publish(subject, payload);
  await pub.flush();
  const bytes = await done;
  const secs = (performance.now() - t0) / 1000;
  await pub.close();
  await sub.close();
  return bytes / secs / 2 ** 20;
}

async function latency(connect: Connect, url: string, n: number): Promise<number> {
  const nc = await connect({ servers: url });
  const s = nc.subscribe('bench.echo');
  (async () => {
    for await (const m of s) m.respond(m.data);
  })();
  await nc.flush();
  const times: number[] = [];
  const msg = new Uint8Array(64);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await nc.request('bench.echo', msg, { timeout: 2000 });
    times.push(performance.now() - t0);
  }
  await nc.close();
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)]! * 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(): Promise<void> {
  const server = await startNats({ prefer: 'process', maxPayload: 8 * 2 ** 20 });
  const rounds = 3;
  const cases = [
    { size: 64 * 1024, count: 2048 },
    { size: 1024 * 1024, count: 256 },
  ];
  const results = new Map<string, number[]>();
  try {
    for (let r = 0; r < rounds; r++) {
      for (const [name, connect] of clients) {
        for (const c of cases) {
          const key = `${name}|${c.size}`;
          results.set(key, [
            ...(results.get(key) ?? []),
            await throughput(connect, server.url, c.size, c.count),
          ]);
        }
        const key = `${name}|lat`;
        results.set(key, [...(results.get(key) ?? []), await latency(connect, server.url, 2000)]);
      }
    }
  } finally {
    await server.stop();
  }
  console.log(
    '\n## NATS clients: pub/sub throughput and request latency (loopback, median of 3 paired rounds)',
  );
  console.log('client                     | 64 KiB msgs MiB/s | 1 MiB msgs MiB/s | request p50 us');
  for (const [name] of clients) {
    const f = (k: string) => median(results.get(`${name}|${k}`)!).toFixed(0);
    console.log(
      `${name.padEnd(26)} | ${f('65536').padStart(17)} | ${f('1048576').padStart(16)} | ${f('lat').padStart(14)}`,
    );
  }
  const [a, b] = clients.map(([n]) => median(results.get(`${n}|1048576`)!));
  console.log(`ratio @nats-io/transport-node / nats (1 MiB): ${(a! / b!).toFixed(2)}`);
}

// All-reduce of a 16 MiB float32 gradient among 2, 4 and 8 members over one real nats-server on
// loopback, shard-owner vs ring, with nccl-tests algbw/busbw, the server's own byte counters (/varz),
// and raw one-publisher/one-subscriber NATS throughput measured in the same run for comparison.
// Every member is its own NATS connection in this one process (one event loop for all of them).
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type AllReduceAlgorithm, allReduceSum } from '../src/collective/index.ts';
import { startNats } from '../test/support/nats.ts';

const BYTES = 16 * 2 ** 20;
const MEMBER_COUNTS = [2, 4, 8] as const;
const ALGORITHMS = ['shard-owner', 'ring'] as const satisfies readonly AllReduceAlgorithm[];
const REPS = 5; // timed, after one warm-up each
const MiB = 2 ** 20;

interface Varz {
  readonly in_bytes: number;
  readonly out_bytes: number;
  readonly max_payload: number;
}

interface Sample {
  readonly ms: number;
  /** CPU time of this process (all members' client work): less sensitive to a busy machine. */
  readonly cpuMs: number;
  readonly serverIn: number;
  readonly serverOut: number;
}

const varz = async (monitorUrl: string): Promise<Varz> =>
  (await fetch(`${monitorUrl}/varz`)).json() as Promise<Varz>;
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One publisher, one subscriber, `size`-byte messages: the ceiling one NATS link gives us here. */
async function rawPubSub(url: string, size: number, total: number): Promise<number> {
  const [pub, sub] = await Promise.all([connect({ servers: url }), connect({ servers: url })]);
  const count = Math.ceil(total / size);
  let got = 0;
  const done = new Promise<void>((resolve) =>
    sub.subscribe('bench.raw', {
      max: count,
      callback: (_e, m) => {
        got += m.data.length;
        if (got >= count * size) resolve();
      },
    }),
  );
  await sub.flush();
  const payload = new Uint8Array(size).fill(3);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) pub.publish('bench.raw', payload);
  await done;
  const secs = (performance.now() - t0) / 1000;
  await Promise.all([pub.close(), sub.close()]);
  return got / MiB / secs;
}

async function measure(
  conns: readonly NatsConnection[],
  monitorUrl: string,
  algorithm: AllReduceAlgorithm,
  data: readonly Float32Array[],
  generation: number,
): Promise<Sample> {
  const members = conns.map((_, i) => `m${i}`);
  const common = { runId: 'bench', step: conns.length, generation, members, timeoutMs: 120_000, algorithm };
  const before = await varz(monitorUrl);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(conns.map((nc, i) => allReduceSum({ ...common, nc, self: members[i]!, data: data[i]! })));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const after = await varz(monitorUrl);
  return {
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
    serverIn: after.in_bytes - before.in_bytes,
    serverOut: after.out_bytes - before.out_bytes,
  };
}

function printRow(n: number, algorithm: string, s: readonly Sample[]): void {
  const m = (f: (x: Sample) => number) => median(s.map(f));
  const ms = m((x) => x.ms);
  const algbw = BYTES / MiB / (ms / 1000);
  const busbw = (algbw * 2 * (n - 1)) / n;
  const io = (b: number) => `${(b / MiB).toFixed(0)} (${(b / BYTES).toFixed(2)})`.padStart(18);
  const cells = [
    String(n).padStart(7),
    algorithm.padEnd(11),
    String(BYTES),
    ms.toFixed(0).padStart(7),
    algbw.toFixed(0).padStart(11),
    busbw.toFixed(0).padStart(11),
    io(m((x) => x.serverIn)),
    io(m((x) => x.serverOut)).padStart(19),
    (m((x) => x.serverOut) / MiB / (ms / 1000)).toFixed(0).padStart(15),
    m((x) => x.cpuMs)
      .toFixed(0)
      .padStart(13),
  ];
  console.log(cells.join(' | '));
}

export async function run(): Promise<void> {
  const server = await startNats({ prefer: 'process', httpPort: 0 });
  const monitorUrl = server.monitorUrl!;
  const results: Array<readonly [number, string, readonly Sample[]]> = [];
  const ratios: string[] = [];
  const raw: number[] = [];
  let generation = 0;
  try {
    const { max_payload } = await varz(monitorUrl);
    raw.push(await rawPubSub(server.url, max_payload, 256 * MiB));
    for (const n of MEMBER_COUNTS) {
      const conns = await Promise.all(Array.from({ length: n }, () => connect({ servers: server.url })));
      const data = Array.from({ length: n }, (_, m) =>
        Float32Array.from({ length: BYTES / 4 }, (_, i) => Math.sin(i * 0.001 + m)),
      );
      const samples = new Map<AllReduceAlgorithm, Sample[]>(ALGORITHMS.map((a) => [a, []]));
      for (const a of ALGORITHMS) await measure(conns, monitorUrl, a, data, generation++); // warm-up
      // Interleaved, so drift on this shared machine hits both algorithms alike.
      for (let r = 0; r < REPS; r++) {
        for (const a of ALGORITHMS)
          samples.get(a)!.push(await measure(conns, monitorUrl, a, data, generation++));
      }
      // Paired per repetition, so a slow spell of the machine cancels out of the ratio.
      const [so, ring] = ALGORITHMS.map((a) => samples.get(a)!);
      const paired = so!.map((x, r) => x.ms / ring![r]!.ms);
      ratios.push(`${n} members ${median(paired).toFixed(2)} (${paired.map((x) => x.toFixed(2)).join(' ')})`);
      for (const a of ALGORITHMS) results.push([n, a, samples.get(a)!]);
      await Promise.all(conns.map((c) => c.close()));
    }
    raw.push(await rawPubSub(server.url, max_payload, 256 * MiB));
  } finally {
    await server.stop();
  }

  console.log(
    `\n## All-reduce of ${BYTES / MiB} MiB float32 over one nats-server (loopback, median of ${REPS})`,
  );
  console.log(
    'members | algorithm   | bytes    | time ms | algbw MiB/s | busbw MiB/s | server in MiB (xG) | ' +
      'server out MiB (xG) | delivered MiB/s | client CPU ms',
  );
  for (const [n, a, s] of results) printRow(n, a, s);
  console.log(
    'raw NATS pub/sub, 1 publisher -> 1 subscriber, max_payload messages, same server: ' +
      `${raw.map((x) => x.toFixed(0)).join(' / ')} MiB/s delivered (before / after the all-reduce runs)`,
  );
  console.log(`time shard-owner / ring, median of paired repetitions: ${ratios.join('; ')}`);
}

// All-reduce of a 16 MiB float32 gradient among 2, 4 and 8 members over one real nats-server on
// loopback, shard-owner vs ring, with nccl-tests algbw/busbw, the server's own byte counters (/varz),
// and raw one-publisher/one-subscriber NATS throughput measured in the same run for comparison.
// Every member is its own NATS connection in this one process (one event loop for all of them).
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type AllReduceAlgorithm, allReduceSum } from '../src/collective/index.ts';
import { startNats } from '../test/support/nats.ts';

const BYTES = 16 * 2 ** 20;
const MEMBER_COUNTS = [2, 4, 8] as const;
const ALGORITHMS: readonly AllReduceAlgorithm[] = ['shard-owner', 'ring'];
const REPS = 3; // timed, after one warm-up each
const MiB = 2 ** 20;

interface Varz {
  readonly in_bytes: number;
  readonly out_bytes: number;
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

interface Row {
  readonly n: number;
  readonly algorithm: AllReduceAlgorithm;
  readonly ms: number;
  readonly serverIn: number;
  readonly serverOut: number;
}

async function measure(
  conns: readonly NatsConnection[],
  monitorUrl: string,
  algorithm: AllReduceAlgorithm,
  data: readonly Float32Array[],
  generation: number,
): Promise<{ ms: number; serverIn: number; serverOut: number }> {
  const members = conns.map((_, i) => `m${i}`);
  const before = await varz(monitorUrl);
  const t0 = performance.now();
  await Promise.all(
    conns.map((nc, i) =>
      allReduceSum({
        nc,
        runId: 'bench',
        step: conns.length,
        generation,
        members,
        self: members[i]!,
        data: data[i]!,
        timeoutMs: 120_000,
        algorithm,
      }),
    ),
  );
  const ms = performance.now() - t0;
  const after = await varz(monitorUrl);
  return { ms, serverIn: after.in_bytes - before.in_bytes, serverOut: after.out_bytes - before.out_bytes };
}

export async function run(): Promise<void> {
  const server = await startNats({ prefer: 'process', httpPort: 0 });
  const monitorUrl = server.monitorUrl!;
  const rows: Row[] = [];
  const raw: number[] = [];
  let generation = 0;
  try {
    const maxPayload = (await varz(monitorUrl)) as Varz & { max_payload: number };
    raw.push(await rawPubSub(server.url, maxPayload.max_payload, 256 * MiB));
    for (const n of MEMBER_COUNTS) {
      const conns = await Promise.all(Array.from({ length: n }, () => connect({ servers: server.url })));
      const data = Array.from({ length: n }, (_, m) =>
        Float32Array.from({ length: BYTES / 4 }, (_, i) => Math.sin(i * 0.001 + m)),
      );
      const samples = new Map<
        AllReduceAlgorithm,
        Array<{ ms: number; serverIn: number; serverOut: number }>
      >();
      for (const a of ALGORITHMS) await measure(conns, monitorUrl, a, data, generation++); // warm-up
      // Interleaved, so drift on this shared machine hits both algorithms alike.
      for (let r = 0; r < REPS; r++) {
        for (const a of ALGORITHMS) {
          samples.set(a, [
            ...(samples.get(a) ?? []),
            await measure(conns, monitorUrl, a, data, generation++),
          ]);
        }
      }
      for (const a of ALGORITHMS) {
        const s = samples.get(a)!;
        rows.push({
          n,
          algorithm: a,
          ms: median(s.map((x) => x.ms)),
          serverIn: median(s.map((x) => x.serverIn)),
          serverOut: median(s.map((x) => x.serverOut)),
        });
      }
      await Promise.all(conns.map((c) => c.close()));
    }
    raw.push(await rawPubSub(server.url, maxPayload.max_payload, 256 * MiB));
  } finally {
    await server.stop();
  }

  console.log(
    `\n## All-reduce of ${BYTES / MiB} MiB float32 over one nats-server (loopback, median of ${REPS})`,
  );
  console.log(
    'members | algorithm   | bytes    | time ms | algbw MiB/s | busbw MiB/s | server in MiB (xG) | server out MiB (xG)',
  );
  for (const r of rows) {
    const algbw = BYTES / MiB / (r.ms / 1000);
    const busbw = (algbw * 2 * (r.n - 1)) / r.n;
    const io = (b: number) => `${(b / MiB).toFixed(0)} (${(b / BYTES).toFixed(2)})`.padStart(18);
    console.log(
      `${String(r.n).padStart(7)} | ${r.algorithm.padEnd(11)} | ${String(BYTES).padEnd(8)} | ${r.ms.toFixed(0).padStart(7)} | ` +
        `${algbw.toFixed(0).padStart(11)} | ${busbw.toFixed(0).padStart(11)} | ${io(r.serverIn)} | ${io(r.serverOut).padStart(19)}`,
    );
  }
  console.log(
    `raw NATS pub/sub, 1 publisher -> 1 subscriber, max_payload messages, same server: ` +
      `${raw.map((x) => x.toFixed(0)).join(' / ')} MiB/s (before / after the all-reduce runs)`,
  );
}

// All-reduce of a 16 MiB float32 gradient among 2 and 4 members over one real nats-server on
// loopback, each member its own process and NATS connection (bench/support/all-reduce-member.ts),
// frames authenticated under a run key. Against it, in the same run and process layout, raw NATS:
// every member replays the data traffic it recorded in the all-reduce (same subjects, message sizes
// and subscriptions) as plain publish/subscribe. Delivered = the server's bytes out (/varz) per
// second; prints nccl-tests algbw/busbw and one line per algorithm and member count for scripts.
// Modes: signed (the MAC and each member's Ed25519 signature, as workers run: the required line), mac
// (the MAC only: what signing costs), bf16 (signed, values as bfloat16: the bytes on the wire).
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { floatKernelsKind } from '../src/collective/float-kernels.ts';
import { ALGORITHM_NAMES, type AllReduceAlgorithm, frameMacImplementation } from '../src/collective/index.ts';
import { startNats } from '../test/support/nats.ts';
import { Peer } from './support/peer.ts';

const BYTES = 16 * 2 ** 20;
const MEMBER_COUNTS = [2, 4] as const;
const REPS = 5; // timed, after one warm-up each
const MiB = 2 ** 20;
const MODES = ['signed', 'mac', 'bf16'] as const;
type Mode = (typeof MODES)[number];
const MEMBER = fileURLToPath(new URL('./support/all-reduce-member.ts', import.meta.url));

interface Varz {
  readonly in_bytes: number;
  readonly out_bytes: number;
}

interface Sample {
  readonly ms: number;
  /** CPU time of all member processes together (client work; the server's is not in it). */
  readonly cpuMs: number;
  /** Garbage-collection pauses of all member processes together. */
  readonly gcMs: number;
  readonly serverIn: number;
  readonly serverOut: number;
}

const varz = async (monitorUrl: string): Promise<Varz> =>
  (await fetch(`${monitorUrl}/varz`)).json() as Promise<Varz>;
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const all = (peers: readonly Peer[], what: string) => Promise.all(peers.map((p) => p.request(what)));

/** Wall time of `work` on every member at once, with the server's byte counters around it. */
async function timed(monitorUrl: string, peers: readonly Peer[], what: string): Promise<Sample> {
  const before = await varz(monitorUrl);
  const t0 = performance.now();
  const replies = await all(peers, what);
  const ms = performance.now() - t0;
  const after = await varz(monitorUrl);
  // After the clock: every member holds the same bytes (each hashes its result only now).
  if (what.startsWith('reduce ')) {
    const digests = new Set((await all(peers, 'digest')).map((r) => r.digest));
    if (digests.size > 1) throw new Error(`${what}: members ended with different bytes (${[...digests]})`);
  }
  return {
    ms,
    cpuMs: replies.reduce((t, r) => t + Number(r.cpuMs), 0),
    gcMs: replies.reduce((t, r) => t + Number(r.gcMs), 0),
    serverIn: after.in_bytes - before.in_bytes,
    serverOut: after.out_bytes - before.out_bytes,
  };
}

async function startMembers(url: string, n: number): Promise<Peer[]> {
  const key = randomBytes(32).toString('hex');
  const peers = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      Peer.start(`member ${i}`, process.execPath, [
        '--import',
        'tsx',
        MEMBER,
        url,
        String(i),
        String(n),
        key,
      ]),
    ),
  );
  const failed = peers.find((p): p is string => typeof p === 'string');
  if (failed !== undefined) {
    for (const p of peers) if (typeof p !== 'string') p.stop();
    throw new Error(failed);
  }
  return peers as Peer[];
}

interface Row {
  readonly n: number;
  readonly algorithm: AllReduceAlgorithm;
  readonly mode: Mode;
  readonly reduce: Sample[];
  readonly raw: Sample[];
}

function printRow({ n, algorithm, mode, reduce, raw }: Row): void {
  const m = (s: readonly Sample[], f: (x: Sample) => number) => median(s.map(f));
  const ms = m(reduce, (x) => x.ms);
  const algbw = BYTES / MiB / (ms / 1000);
  const io = (b: number) => `${(b / MiB).toFixed(0)} (${(b / BYTES).toFixed(2)})`.padStart(18);
  const cells = [
    String(n).padStart(7),
    algorithm.padEnd(11),
    mode.padEnd(6),
    ms.toFixed(0).padStart(7),
    algbw.toFixed(0).padStart(11),
    ((algbw * 2 * (n - 1)) / n).toFixed(0).padStart(11),
    io(m(reduce, (x) => x.serverIn)),
    io(m(reduce, (x) => x.serverOut)).padStart(19),
    `${m(reduce, (x) => x.cpuMs).toFixed(0)} (${m(reduce, (x) => x.gcMs).toFixed(0)})`.padStart(18),
    m(raw, (x) => x.ms)
      .toFixed(0)
      .padStart(11),
    `${m(raw, (x) => x.cpuMs).toFixed(0)} (${m(raw, (x) => x.gcMs).toFixed(0)})`.padStart(22),
  ];
  console.log(cells.join(' | '));
}

const delivered = (s: readonly Sample[]) => median(s.map((x) => x.serverOut / MiB / (x.ms / 1000)));

export async function run(): Promise<void> {
  const server = await startNats({ prefer: 'process', httpPort: 0 });
  const monitorUrl = server.monitorUrl!;
  const rows: Row[] = [];
  let generation = 0;
  let seq = 0;
  try {
    // Fresh member processes per mode, as a worker runs one: buffers pooled for one mode's frame
    // sizes would otherwise cost the next mode garbage collections.
    for (const n of MEMBER_COUNTS) {
      for (const mode of MODES) {
        const peers = await startMembers(server.url, n);
        try {
          const samples = ALGORITHM_NAMES.map(
            (algorithm) => ({ n, algorithm, mode, reduce: [], raw: [] }) as Row,
          );
          const rawOnce = async ({ algorithm: a, mode }: Row) => {
            const s = seq++;
            await all(peers, `raw-sub ${a} ${mode} ${s}`);
            return timed(monitorUrl, peers, `raw-go ${a} ${mode} ${s}`);
          };
          // Warm-up: the first round of each algorithm also records the traffic raw NATS replays.
          for (const row of samples) {
            await timed(monitorUrl, peers, `reduce ${row.algorithm} ${row.mode} ${generation++} record`);
            await rawOnce(row);
          }
          // Interleaved, so drift on this shared machine hits all of them alike.
          for (let r = 0; r < REPS; r++) {
            for (const row of samples) {
              row.raw.push(await rawOnce(row));
              row.reduce.push(
                await timed(monitorUrl, peers, `reduce ${row.algorithm} ${row.mode} ${generation++}`),
              );
            }
          }
          rows.push(...samples);
        } finally {
          for (const p of peers) p.stop();
        }
      }
    }
  } finally {
    await server.stop();
  }

  console.log(
    `\n## All-reduce of ${BYTES / MiB} MiB float32, one process per member, one nats-server (loopback, ` +
      `median of ${REPS}; ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at the end; ` +
      `frame MAC ${frameMacImplementation}, float loops ${floatKernelsKind}: LORA_MPT_FRAME_MAC=wasm and ` +
      `LORA_MPT_FLOAT_KERNELS=js give the portable ones)`,
  );
  console.log(
    'members | algorithm   | mode   | time ms | algbw MiB/s | busbw MiB/s | server in MiB (xG) | server out MiB (xG) | ' +
      'member CPU (GC) ms | raw time ms | raw member CPU (GC) ms',
  );
  const order = (r: Row) => [r.n, ALGORITHM_NAMES.indexOf(r.algorithm), MODES.indexOf(r.mode)];
  rows.sort((a, b) => order(a).reduce((d, x, i) => d || x - order(b)[i]!, 0));
  for (const row of rows) printRow(row);
  const ratio = (row: Row) => {
    const x = delivered(row.reduce);
    const y = delivered(row.raw);
    return `${(x / y).toFixed(2)} of raw NATS (${x.toFixed(0)} / ${y.toFixed(0)} MiB/s)`;
  };
  const medianOf = (s: readonly Sample[], f: (x: Sample) => number) => median(s.map(f));
  for (const row of rows.filter((r) => r.mode === 'signed')) {
    const { n, algorithm } = row;
    const peer = (mode: Mode) => rows.find((r) => r.n === n && r.algorithm === algorithm && r.mode === mode)!;
    console.log(`all-reduce ${algorithm} ${n} members, separate processes: ${ratio(row)}`);
    const macOnly = peer('mac');
    const cpu = (r: Row) => medianOf(r.reduce, (x) => x.cpuMs);
    console.log(
      `  MAC only (no signatures): ${ratio(macOnly)}; signing costs ${(cpu(row) - cpu(macOnly)).toFixed(0)} ms of member CPU per round ` +
        `(${cpu(row).toFixed(0)} vs ${cpu(macOnly).toFixed(0)}), time ${(medianOf(row.reduce, (x) => x.ms) / medianOf(macOnly.reduce, (x) => x.ms)).toFixed(2)}x`,
    );
    const bf16 = peer('bf16');
    const out = (r: Row) => medianOf(r.reduce, (x) => x.serverOut);
    console.log(
      `  bf16 on the wire: ${ratio(bf16)}; server out ${(out(bf16) / MiB).toFixed(1)} vs ${(out(row) / MiB).toFixed(1)} MiB in f32 ` +
        `(${(out(bf16) / out(row)).toFixed(3)}), time ${(medianOf(bf16.reduce, (x) => x.ms) / medianOf(row.reduce, (x) => x.ms)).toFixed(2)}x`,
    );
  }
  console.log(ed25519Line());
}

/** What one frame's signature costs: sign and verify header + MAC (76 bytes) with Ed25519, in this process. */
function ed25519Line(): string {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const data = randomBytes(76);
  const signature = sign(null, data, privateKey);
  const per = (f: () => void) => {
    for (let i = 0; i < 200; i++) f();
    const t0 = performance.now();
    for (let i = 0; i < 2000; i++) f();
    return ((performance.now() - t0) / 2000) * 1000;
  };
  const s = per(() => sign(null, data, privateKey));
  const v = per(() => verify(null, data, publicKey, signature));
  return `Ed25519 per frame (76 bytes): sign ${s.toFixed(0)} us, verify ${v.toFixed(0)} us (load average ${loadavg()[0]!.toFixed(1)})`;
}

// Coordinator dispatch rate: the real gRPC server and step driver dealing one large step of
// micro-batches (4 rows x 128 tokens each, real wire size) to simulated workers — gRPC clients in a
// child process that speak the protocol but report each micro-batch as soon as it arrives, so the
// figure is the coordinator's ceiling, not a model's (bench/support/dispatch-sim.ts). Prints
// micro-batches/s, the latency from a worker's report (which returns its credit) to its next
// micro-batch (p50/p99), and the coordinator's CPU per micro-batch. `DISPATCH_WORKERS` (default 64)
// sets the workers; `DISPATCH_PACED=10000` adds a run at that offered rate (each worker holds one
// micro-batch and reports it workers/rate seconds later); `DISPATCH_PIN=1` pins the coordinator's
// side to CPU 0 and the clients to CPU 1 (taskset), so the clients cannot take the coordinator's
// core. `DISPATCH_PER_WORKER` sets the micro-batches per worker of the one step (default 40 at 128
// workers and more, else 60); `DISPATCH_CLIENT_PROCESSES` spreads the clients over that many
// processes (default 1), each with its own event loop as real workers have. The paced run is made
// twice: every micro-batch taking exactly workers/rate (`fixed`: the workers stay in step and
// report in bursts) and exponential times of that mean (`poisson`); `DISPATCH_ARRIVALS=fixed` or
// `poisson` keeps one. Latency percentiles leave out each client's first 16 micro-batches (V8
// has not optimized the freshly started clients' process yet); the p99 of all samples is printed
// beside them. `DISPATCH_CLIENT_NODE_FLAGS` passes Node/V8 flags to the clients' processes (the
// coordinator's side runs in this process: give it flags on the `node` command line).
// bench/cluster.ts runs both at 8 to 256.
import { loadavg } from 'node:os';
import { type Arrivals, type DispatchFigures, measureDispatch } from './support/dispatch-sim.ts';

const WORKERS = Number(process.env.DISPATCH_WORKERS ?? 64);
const PACED = process.env.DISPATCH_PACED === undefined ? undefined : Number(process.env.DISPATCH_PACED);
/** 3,840 micro-batches at 64 workers, 10,240 at 256 (as bench/cluster.ts deals). */
const PIN = process.env.DISPATCH_PIN === '1';
const CLIENT_PROCESSES = Number(process.env.DISPATCH_CLIENT_PROCESSES ?? 1);
const PER_WORKER = Number(process.env.DISPATCH_PER_WORKER ?? (WORKERS >= 128 ? 40 : 60));
const ARRIVALS = process.env.DISPATCH_ARRIVALS;

function print(what: string, f: DispatchFigures): void {
  const procs = CLIENT_PROCESSES === 1 ? 'another process' : `${CLIENT_PROCESSES} other processes`;
  const where = PIN ? `${procs} on CPU 1, the coordinator on CPU 0` : procs;
  console.log(
    `\n## Coordinator dispatch (${what}): ${f.workers} simulated workers (${where}), one step of ${f.microBatches} micro-batches (4x128 tokens each)`,
  );
  console.log(
    `micro-batches dispatched and reported: ${f.microBatches} in ${f.seconds.toFixed(2)} s = ${f.perSecond.toFixed(0)} micro-batches/s`,
  );
  console.log(
    `report -> next micro-batch latency: p50 ${f.p50Ms.toFixed(2)} ms, p99 ${f.p99Ms.toFixed(2)} ms (${f.samples} samples after each client's first ${f.warmup.perWorker}; p90 ${f.p90Ms.toFixed(2)}, p95 ${f.p95Ms.toFixed(2)}, p99.9 ${f.p999Ms.toFixed(2)} ms); the first ${f.warmup.perWorker} per client: p99 ${f.warmup.p99Ms.toFixed(2)} ms (${f.warmup.samples} samples); all samples: p99 ${f.warmup.allP99Ms.toFixed(2)} ms`,
  );
  console.log(
    `clients' CPU per micro-batch: ${f.clientsCpuMicrosPerMicroBatch.toFixed(0)} us (their process busy ${(100 * f.clientsBusy).toFixed(0)}% of its wall time: near 100% they, not the coordinator, set the pace); their event-loop p99 ${f.clientsLoopP99Ms.toFixed(1)} ms, max ${f.clientsLoopMaxMs.toFixed(1)} ms; their GC ${f.clientsGc.count} pauses, ${f.clientsGc.totalMs.toFixed(0)} ms in all, longest ${f.clientsGc.maxMs.toFixed(1)} ms (every latency above includes these)`,
  );
  console.log(
    `coordinator CPU per micro-batch: ${f.cpuMicrosPerMicroBatch.toFixed(0)} us (= ${(1e6 / f.cpuMicrosPerMicroBatch).toFixed(0)} micro-batches/s per core; busy ${((f.cpuMicrosPerMicroBatch * f.perSecond) / 1e4).toFixed(0)}% of the wall time); event-loop p99 ${f.loopP99Ms.toFixed(1)} ms, max ${f.loopMaxMs.toFixed(1)} ms; GC ${f.gc.count} pauses, ${f.gc.totalMs.toFixed(0)} ms in all, longest ${f.gc.maxMs.toFixed(1)} ms; loadavg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}

export async function run(): Promise<void> {
  if (!Number.isInteger(CLIENT_PROCESSES) || CLIENT_PROCESSES < 1)
    throw new Error(
      `DISPATCH_CLIENT_PROCESSES=${process.env.DISPATCH_CLIENT_PROCESSES}: expected a positive integer`,
    );
  if (!Number.isInteger(PER_WORKER) || PER_WORKER < 1)
    throw new Error(`DISPATCH_PER_WORKER=${process.env.DISPATCH_PER_WORKER}: expected a positive integer`);
  if (!Number.isInteger(WORKERS) || WORKERS < 1)
    throw new Error(`DISPATCH_WORKERS=${process.env.DISPATCH_WORKERS}: expected a positive integer`);
  print('ceiling', await measureDispatch(WORKERS, PER_WORKER, undefined, PIN, CLIENT_PROCESSES));
  if (PACED === undefined) return;
  if (!(PACED > 0)) throw new Error(`DISPATCH_PACED=${process.env.DISPATCH_PACED}: expected a positive rate`);
  if (ARRIVALS !== undefined && ARRIVALS !== 'fixed' && ARRIVALS !== 'poisson')
    throw new Error(`DISPATCH_ARRIVALS=${ARRIVALS}: expected fixed or poisson`);
  const kinds: Arrivals[] = ARRIVALS === undefined ? ['fixed', 'poisson'] : [ARRIVALS];
  for (const arrivals of kinds) {
    const how =
      arrivals === 'fixed'
        ? `each micro-batch ${((1000 * WORKERS) / PACED).toFixed(1)} ms: workers in step`
        : `exponential micro-batch times, mean ${((1000 * WORKERS) / PACED).toFixed(1)} ms: Poisson reports`;
    print(
      `${PACED}/s offered, ${how}`,
      await measureDispatch(WORKERS, PER_WORKER, PACED, PIN, CLIENT_PROCESSES, arrivals),
    );
  }
}

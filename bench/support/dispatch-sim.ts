// The coordinator's dispatch path alone: the real gRPC server and step driver (in this process,
// with the events, status page and metrics `lora-mpt coordinator` taps, and its collector tuning)
// dealing one large step of micro-batches (ROWS x SEQ tokens each, real wire size) to N simulated
// workers — gRPC clients in a child process (dispatch-clients.ts) that speak the protocol but
// compute nothing, so the figures are the coordinator's, not a model's. Shared by bench/dispatch.ts
// and bench/cluster.ts.

import { execFileSync, spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { startCoordinatorServer } from '../../src/coordinator/grpc-server.ts';
import { tuneCoordinatorHeap } from '../../src/coordinator/heap-tuning.ts';
import { RunStatus } from '../../src/coordinator/run-status.ts';
import { StepDriver } from '../../src/coordinator/step-driver.ts';
import type { MicroBatch } from '../../src/data/micro-batch.ts';
import { createEvents } from '../../src/events/events.ts';
import { tapEvents } from '../../src/events/tap.ts';
import { createCoordinatorMetrics } from '../../src/metrics/coordinator-metrics.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';

const ROWS = 4;
const SEQ = 128;

export interface DispatchFigures {
  readonly workers: number;
  readonly microBatches: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** p90, p95, p99.9: where the tail starts. */
  readonly p90Ms: number;
  readonly p95Ms: number;
  readonly p999Ms: number;
  readonly samples: number;
  /**
   * The samples left out of the percentiles above: each client's first `perWorker` micro-batches,
   * while the freshly started clients' process is not yet optimized by V8. `allP99Ms`: p99 of all.
   */
  readonly warmup: {
    readonly perWorker: number;
    readonly samples: number;
    readonly p99Ms: number;
    readonly allP99Ms: number;
  };
  /** The coordinator's event-loop delay p99 and maximum while dealing. */
  readonly loopP99Ms: number;
  readonly loopMaxMs: number;
  /** The coordinator's garbage-collection pauses while dealing: count, total, longest. */
  readonly gc: { readonly count: number; readonly totalMs: number; readonly maxMs: number };
  /** The coordinator's CPU (user + system) per micro-batch dealt and counted, in microseconds. */
  readonly cpuMicrosPerMicroBatch: number;
  /** The clients process's CPU per micro-batch, and the share of its wall time it was busy. */
  readonly clientsCpuMicrosPerMicroBatch: number;
  readonly clientsBusy: number;
  /** The clients' processes: the worst event-loop delay p99 and maximum among them. */
  readonly clientsLoopP99Ms: number;
  readonly clientsLoopMaxMs: number;
  /** The clients' garbage-collection pauses while dealing: count, total, longest. */
  readonly clientsGc: { readonly count: number; readonly totalMs: number; readonly maxMs: number };
}

export type Arrivals = 'fixed' | 'poisson';
/** Each client's first micro-batches, whose latencies are reported apart by default. */
export const WARMUP_PER_WORKER = 16;

const CLIENTS = fileURLToPath(new URL('./dispatch-clients.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function plannedStep(count: number): MicroBatch[] {
  const ids = new Int32Array(ROWS * SEQ).map((_, i) => (i * 7919) % 50277);
  const labels = ids.map((v, i) => (i % SEQ < 40 ? -100 : v));
  const mask = new Int32Array(ROWS * SEQ).fill(1);
  return Array.from({ length: count }, (_, id) => ({
    id,
    step: 0,
    rows: ROWS,
    seqLen: SEQ,
    inputIds: ids,
    labels,
    attentionMask: mask,
  }));
}

export const percentile = (xs: readonly number[], p: number): number =>
  xs.length === 0
    ? Number.NaN
    : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

/**
 * Pins this process (the coordinator's side: gRPC server and step driver, every thread) to CPU 0 and
 * returns the command prefix that starts the clients on CPU 1, so that 256 clients decoding and
 * answering cannot take the coordinator's core; `restore` gives this process every CPU back. The
 * other work of the machine still shares both cores. Needs `taskset` (util-linux) and 2+ CPUs.
 */
function pinCores(): { clientsPrefix: string[]; restore(): void } {
  const all = `0-${cpus().length - 1}`;
  if (cpus().length < 2)
    throw new Error('DISPATCH_PIN=1: needs 2 or more CPUs to give the clients their own');
  execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  return {
    clientsPrefix: ['taskset', '-c', '1'],
    restore: () => execFileSync('taskset', ['-a', '-p', '-c', all, String(process.pid)], { stdio: 'ignore' }),
  };
}

/**
 * `pacedPerSecond` absent: every client holds 2 micro-batches and reports each at once (the
 * ceiling; latency is then mostly queueing behind the other clients). Present: each holds 1 and
 * "computes" workers / pacedPerSecond seconds before reporting, so the offered load is that rate in
 * all and report-to-next is the coordinator's answer time at that load.
 */
export async function measureDispatch(
  workers: number,
  perWorker: number,
  pacedPerSecond?: number,
  /** Coordinator on CPU 0, clients on CPU 1 (pinCores). */
  pin = false,
  /** Processes the clients are spread over (each its own event loop, as workers have). */
  clientProcesses = 1,
  /**
   * Paced only: every micro-batch takes exactly workers / pacedPerSecond (`fixed`: identical
   * workers on identical micro-batches, which stay in step and report in bursts), or a time drawn
   * from an exponential distribution of that mean (`poisson`: reports arrive as a Poisson stream).
   */
  arrivals: Arrivals = 'fixed',
  /** Each client's first micro-batches whose latencies are kept apart (DispatchFigures.warmup). */
  warmup = WARMUP_PER_WORKER,
): Promise<DispatchFigures> {
  const credits = pacedPerSecond === undefined ? 2 : 1;
  const computeMs = pacedPerSecond === undefined ? 0 : (1000 * workers) / pacedPerSecond;
  const total = workers * perWorker;
  const step = plannedStep(total);
  const layout = paramLayout([{ name: 'w', shape: [8, 8] }]);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  // The coordinator's garbage-collection pauses while dealing.
  const coordinatorGc: number[] = [];
  const gcWatch = new PerformanceObserver((list) => {
    if (startedAt > 0) for (const e of list.getEntries()) coordinatorGc.push(e.duration);
  });
  gcWatch.observe({ entryTypes: ['gc'] });
  let synced = 0;
  let startedAt = 0;
  let cpuAtStart = process.cpuUsage();
  // The coordinator's events go where `lora-mpt coordinator` sends them (src/cli/coordinator.ts): a
  // JSON log at level info (here into a sink that drops the bytes) with the run id bound, and one
  // tap that hands each event to the status page and the metrics; every micro-batch dealt and
  // counted passes through them. Dealing starts when the last replica is synced (--min_workers N):
  // the clock starts there.
  const status = new RunStatus();
  const metrics = createCoordinatorMetrics('bench');
  const log = createEvents({
    label: 'coordinator',
    format: 'json',
    level: 'info',
    out: new Writable({ write: (_chunk, _encoding, done) => done() }),
  });
  const events = tapEvents(log.child({ run_id: 'bench' }), (e) => {
    status.record(e);
    metrics.record(e);
    if (e.event !== 'worker_synced' || ++synced < workers) return;
    startedAt = performance.now();
    cpuAtStart = process.cpuUsage();
    loop.enable();
  });
  let ledgerDone: () => void = () => {};
  const complete = new Promise<void>((r) => {
    ledgerDone = r;
  });
  const driver = new StepDriver({
    runId: 'bench',
    modelFingerprint: 'fp',
    totalSteps: 1,
    minWorkers: workers,
    maxGradNorm: 1,
    evalSteps: 1000,
    replica: new AdapterReplica(layout, new Float32Array(layout.size)),
    microBatches: () => step,
    evalMicroBatches: [],
    learningRate: () => 0,
    observerId: 'coordinator',
    algorithm: 'shard-owner',
    // The step's ledger is whole when the driver starts its all-reduce: that ends the measurement.
    observeReduce: () => {
      ledgerDone();
      return new Promise(() => {});
    },
    onCommit: async () => {},
    onEval: async () => {},
    afterStep: async () => {},
    events,
  });
  // The coordinator's side runs in this process: tuned as `lora-mpt coordinator` tunes its own.
  tuneCoordinatorHeap();
  const server = await startCoordinatorServer({
    listen: '127.0.0.1:0',
    driver,
    runId: 'bench',
    runConfigJson: '{}',
    modelFingerprint: 'fp',
    heartbeatIntervalMs: 5000,
    security: { kind: 'insecure' },
    heartbeatTimeoutMs: 600_000,
    maxWorkers: workers,
    events,
  });
  const pinned = pin ? pinCores() : undefined;
  const [cmd, ...pre] = [...(pinned?.clientsPrefix ?? []), process.execPath];
  // The clients in `clientProcesses` processes (one by default), sessions split evenly.
  const per = Math.ceil(workers / clientProcesses);
  const children = Array.from({ length: Math.ceil(workers / per) }, (_, k) => {
    const n = Math.min(per, workers - k * per);
    const child = spawn(
      cmd!,
      [
        ...pre,
        // Node/V8 flags for the clients' processes only (DISPATCH_CLIENT_NODE_FLAGS, space-separated).
        ...(process.env.DISPATCH_CLIENT_NODE_FLAGS ?? '').split(' ').filter(Boolean),
        '--import',
        'tsx',
        CLIENTS,
        ...[server.port, n, credits, computeMs, k * per].map(String),
        arrivals,
        String(warmup),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    return { child, out: () => out, exited: new Promise<void>((r) => child.once('close', () => r())) };
  });
  const exited = Promise.all(children.map((c) => c.exited));
  try {
    await complete;
    loop.disable();
    gcWatch.disconnect();
    const seconds = (performance.now() - startedAt) / 1000;
    const cpu = process.cpuUsage(cpuAtStart);
    driver.stop('benchmark over');
    await exited;
    const parts = children.map(
      (c) =>
        // The last JSON line: the clients' result (V8 tracing flags may print lines before it).
        JSON.parse(
          c
            .out()
            .trim()
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .at(-1) ?? '',
        ) as {
          latencies: number[];
          warmupLatencies: number[];
          cpuMicros: number;
          wallMicros: number;
          loopP99Ms: number;
          loopMaxMs: number;
          gcPauses: number[];
        },
    );
    const gcPauses = parts.flatMap((p) => p.gcPauses);
    const latencies = parts.flatMap((p) => p.latencies);
    const warmupLatencies = parts.flatMap((p) => p.warmupLatencies);
    // Busy: the clients' CPU over the wall time of one core (they share CPU 1 when pinned).
    const clients = {
      cpuMicros: parts.reduce((t, p) => t + p.cpuMicros, 0),
      wallMicros: Math.max(...parts.map((p) => p.wallMicros)),
    };
    return {
      workers,
      microBatches: total,
      seconds,
      perSecond: total / seconds,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      p90Ms: percentile(latencies, 0.9),
      p95Ms: percentile(latencies, 0.95),
      p999Ms: percentile(latencies, 0.999),
      samples: latencies.length,
      warmup: {
        perWorker: warmup,
        samples: warmupLatencies.length,
        p99Ms: percentile(warmupLatencies, 0.99),
        allP99Ms: percentile([...latencies, ...warmupLatencies], 0.99),
      },
      loopP99Ms: loop.percentile(99) / 1e6,
      loopMaxMs: loop.max / 1e6,
      gc: {
        count: coordinatorGc.length,
        totalMs: coordinatorGc.reduce((t, ms) => t + ms, 0),
        maxMs: Math.max(0, ...coordinatorGc),
      },
      cpuMicrosPerMicroBatch: (cpu.user + cpu.system) / total,
      clientsCpuMicrosPerMicroBatch: clients.cpuMicros / total,
      clientsBusy: clients.cpuMicros / clients.wallMicros,
      clientsLoopP99Ms: Math.max(...parts.map((p) => p.loopP99Ms)),
      clientsLoopMaxMs: Math.max(...parts.map((p) => p.loopMaxMs)),
      clientsGc: {
        count: gcPauses.length,
        totalMs: gcPauses.reduce((t, x) => t + x, 0),
        maxMs: Math.max(0, ...gcPauses),
      },
    };
  } finally {
    pinned?.restore();
    for (const c of children) c.child.kill('SIGKILL');
    await server.close();
  }
}

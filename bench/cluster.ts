// The coordinator at cluster scale (issue #21, docs/scale.md "Cluster bench"). Per size (8, 32, 128,
// 256 workers): (1) the dispatch path alone — the real gRPC server and step driver, simulated
// protocol clients that report at once (ceiling) and clients paced at 10,000 micro-batches/s in all
// (report-to-next latency at the target load); (2) a whole synthetic run — one real `lora-mpt
// coordinator` process, the workers as synthetic sessions 32 to a process (each its own gRPC stream
// and NATS connection), a real nats-server — with step time against the ideal, the coordinator's CPU
// per step, peak RSS, event-loop lag p99, /metrics and /api/status sizes.
// CLUSTER_SIZES=8,32 picks sizes; CLUSTER_STEPS the steps of each run (default 3); CLUSTER_PIN=1 runs
// the dispatch path with the coordinator on CPU 0 and its clients on CPU 1 (as DISPATCH_PIN=1).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNats } from '../test/support/nats.ts';
import { startSyntheticCluster } from '../test/support/synthetic-cluster.ts';
import { measureDispatch, percentile } from './support/dispatch-sim.ts';
import { natsThroughput } from './support/nats-throughput.ts';

const SIZES = (process.env.CLUSTER_SIZES ?? '8,32,128,256').split(',').map(Number);
const STEPS = Number(process.env.CLUSTER_STEPS ?? 3);
const PIN = process.env.CLUSTER_PIN === '1';
const PER_PROCESS = 32;
const MICRO_BATCH = 4;
const PER_WORKER = 2; // micro-batches per worker per step
const PROFILE = 'h100-80gb';
const TOKENIZER = '../shared/data/gpt-neox-20b/tokenizer.json';
const ALPACA = '../shared/data/alpaca_data.json';
/** Above this many workers the adapter is r=1 (524,288 values), not r=8: see adapterFor. */
const FULL_SIZE_UP_TO = 32;

/**
 * MPT-7B r=8 on Wqkv (4,194,304 values, 16.8 MB) up to 32 workers. 128 and 256 sessions of that on
 * 2 cores would need ~26 GB of replicas (adapter, AdamW moments, accumulator) and move 8.6 GB of
 * all-reduce traffic per step through one nats-server: r=1 (524,288 values) keeps the same model
 * FLOPs (modelled time) with 1/8 of the gradient.
 */
const adapterFor = (workers: number) => (workers <= FULL_SIZE_UP_TO ? 8 : 1);

const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const mib = (b: number) => (b / 2 ** 20).toFixed(1);

/** Coordinator RSS at each size's last scrape, by adapter rank: the slope between sizes is per worker. */
const rssAfter: { n: number; r: number; bytes: number }[] = [];

async function runSize(n: number, natsUrl: string, bytesPerSecond: number, data: string): Promise<void> {
  const r = adapterFor(n);
  const values = 32 * r * (4096 + 3 * 4096);
  // 10,240 micro-batches whatever the size: the rate is per micro-batch, not per worker.
  const perWorker = Math.ceil(10_240 / n);
  const ceiling = await measureDispatch(n, perWorker, undefined, PIN);
  const paced = await measureDispatch(n, perWorker, 10_000, PIN, 1, 'fixed');
  const poisson = await measureDispatch(n, perWorker, 10_000, PIN, 1, 'poisson');
  console.log(
    `\n## ${n} workers (MPT-7B, LoRA r=${r} on Wqkv: ${values.toLocaleString('en-US')} values, ${mib(values * 4)} MiB gradient)`,
  );
  console.log(
    `dispatch path (${ceiling.microBatches} micro-batches to ${n} simulated clients in another process${PIN ? ', pinned: coordinator CPU 0, clients CPU 1' : ''}): ceiling ${fmt(ceiling.perSecond, 0)} micro-batches/s, coordinator CPU ${fmt(ceiling.cpuMicrosPerMicroBatch, 0)} us per micro-batch (= ${fmt(1e6 / ceiling.cpuMicrosPerMicroBatch, 0)}/s per core), report-to-next p50 ${fmt(ceiling.p50Ms, 2)} ms, p99 ${fmt(ceiling.p99Ms, 2)} ms (closed loop: queueing behind the others), event-loop p99 ${fmt(ceiling.loopP99Ms, 1)} ms`,
  );
  for (const [how, f] of [
    [`every micro-batch ${fmt((1000 * n) / 10_000, 1)} ms: workers in step`, paced],
    [`exponential micro-batch times, mean ${fmt((1000 * n) / 10_000, 1)} ms: Poisson reports`, poisson],
  ] as const) {
    console.log(
      `  at 10,000/s offered (each client 1 in flight, ${how}): ${fmt(f.perSecond, 0)}/s, report-to-next p50 ${fmt(f.p50Ms, 2)} ms, p99 ${fmt(f.p99Ms, 2)} ms after each client's first ${f.warmup.perWorker} (all samples: ${fmt(f.warmup.allP99Ms, 2)} ms), event-loop p99 ${fmt(f.loopP99Ms, 1)} ms, longest GC pause: coordinator ${fmt(f.gc.maxMs, 1)} ms, clients ${fmt(f.clientsGc.maxMs, 1)} ms`,
    );
  }
  const out = mkdtempSync(join(tmpdir(), `lora-mpt-cluster-${n}-`));
  const t0 = performance.now();
  const cluster = await startSyntheticCluster({
    workers: n,
    perProcess: PER_PROCESS,
    natsUrl,
    gpuProfile: PROFILE,
    // A scrape every 5 s (Prometheus' default is 15 to 60 s): each costs the coordinator ~10 ms.
    pollMs: 5000,
    trainingFlags: [
      '--base_model',
      'synthetic:mpt-7b',
      '--tokenizer',
      TOKENIZER,
      '--data_path',
      data,
      '--output_dir',
      out,
      '--batch_size',
      String(n * MICRO_BATCH * PER_WORKER),
      '--micro_batch_size',
      String(MICRO_BATCH),
      '--cutoff_len',
      '256',
      '--max_steps',
      String(STEPS),
      '--val_set_size',
      '0',
      '--save_steps',
      '1000',
      '--warmup_steps',
      '1',
      '--lora_r',
      String(r),
      '--lora_target_modules',
      '[Wqkv]',
    ],
  });
  try {
    const codes = await cluster.finished();
    const wall = (performance.now() - t0) / 1000;
    const commits = cluster.coordinator.events().filter((e) => e.event === 'step_committed');
    const ok = codes.every((c) => c === 0) && commits.length === STEPS;
    console.log(
      `run: ${ok ? 'completed' : `FAILED (exit codes ${codes.join(',')})`}, ${commits.length} steps in ${fmt(wall)} s wall (start-up included)`,
    );
    if (!ok) console.log(cluster.coordinator.output().slice(-2000));
    // Steps after the first (its time includes the workers joining and the first sync).
    const stepSeconds = commits.map((e) => Number(e.step_seconds)).filter((s) => Number.isFinite(s) && s > 0);
    const mean = stepSeconds.reduce((a, b) => a + b, 0) / stepSeconds.length;
    let modelled = 0;
    let trained = 0;
    for (const p of cluster.pools) {
      const line = p
        .output()
        .split('\n')
        .find((l) => l.startsWith('{"event":"pool_done"'));
      const done = line === undefined ? {} : (JSON.parse(line) as Record<string, number>);
      modelled += done.modelled_train_seconds ?? 0;
      trained += done.micro_batches ?? 0;
    }
    // Ideal: the step's modelled GPU seconds spread evenly, plus the all-reduce's bytes through the
    // server (each member receives ~2x the gradient: others' shards, then the reduced shards; the
    // coordinator 1x) at the nats-server throughput measured in this run.
    const compute = ((modelled / trained / 1) * (n * PER_WORKER)) / n;
    const allReduce = ((2 * n + 1) * values * 4) / bytesPerSecond;
    const ideal = compute + allReduce;
    console.log(
      `step time: ${fmt(mean, 2)} s (mean of steps 2..${STEPS}) vs ideal ${fmt(ideal, 2)} s (modelled ${PROFILE} compute ${fmt(compute, 2)} s + all-reduce ${fmt(allReduce, 2)} s at ${fmt(bytesPerSecond / 2 ** 20, 0)} MiB/s) = ${fmt(mean / ideal, 2)}x; ${trained} micro-batches, ${fmt(trained / (wall - 0), 0)}/s over the wall time`,
    );
    const obs = cluster.observations;
    const last = obs.at(-1);
    const firstStep = obs.find((x) => x.stepsCommitted >= 1);
    const lastStep = [...obs].reverse().find((x) => x.stepsCommitted > (firstStep?.stepsCommitted ?? 0));
    const cpuPerStep =
      firstStep && lastStep
        ? (lastStep.cpuSeconds - firstStep.cpuSeconds) / (lastStep.stepsCommitted - firstStep.stepsCommitted)
        : Number.NaN;
    const windows = obs.map((x) => x.loopP99Seconds * 1000).filter(Number.isFinite);
    const loopP99 = Math.max(...windows);
    const loopMedian = percentile(windows, 0.5);
    // Resident memory before the workers joined (the first poll, at run_started) and at the last
    // scrape: what the coordinator keeps per worker, plus whatever a step in flight holds then (no
    // GC is forced). The peak adds the state sync messages in flight.
    const first = obs[0];
    const perWorker = first && last ? (last.rssBytes - first.rssBytes) / n : Number.NaN;
    if (last) rssAfter.push({ n, r, bytes: last.rssBytes });
    console.log(
      `coordinator RSS: ${mib(first?.rssBytes ?? 0)} MiB before the workers joined, ${mib(last?.rssBytes ?? 0)} MiB at the last scrape (buffers of a step in flight count) = ${mib(perWorker)} MiB per worker; peak ${mib(last?.peakRssBytes ?? 0)} MiB (state syncs in flight: ${mib(3 * values * 4)} MiB each)`,
    );
    console.log(
      `coordinator: CPU ${fmt(cpuPerStep, 2)} s per step, event-loop lag p99 ${fmt(loopP99, 1)} ms (worst 5 s window of ${obs.length}, median ${fmt(loopMedian, 1)} ms); /metrics ${last?.metricsBytes ?? 0} bytes, ${last?.metricsSeries ?? 0} series; /api/status ${Math.max(...obs.map((x) => x.statusBytes))} bytes (largest)`,
    );
  } finally {
    await cluster.stop();
    rmSync(out, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const nats = await startNats({ prefer: 'process' });
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-cluster-data-'));
  try {
    // Enough rows for the largest size's steps; the run prepares (tokenizes) only these.
    const rows = Math.max(...SIZES) * MICRO_BATCH * PER_WORKER * STEPS + 64;
    const data = join(dir, 'alpaca.json');
    writeFileSync(data, JSON.stringify(JSON.parse(readFileSync(ALPACA, 'utf8')).slice(0, rows)));
    const bytesPerSecond = await natsThroughput(nats.url);
    console.log(
      `\n## Cluster bench: one coordinator process, ${SIZES.join(' / ')} synthetic workers (${PER_PROCESS} sessions a process), one nats-server; ${STEPS} steps of ${PER_WORKER} micro-batches of ${MICRO_BATCH} rows per worker, modelled ${PROFILE}`,
    );
    console.log(
      `nats-server throughput (1 publisher -> 1 subscriber, 64 KiB messages): ${fmt(bytesPerSecond / 2 ** 20, 0)} MiB/s; loadavg ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    for (const n of SIZES) {
      await runSize(n, nats.url, bytesPerSecond, data);
      console.log(
        `loadavg ${loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')}`,
      );
    }
    for (const [a, b] of rssAfter.slice(0, -1).map((x, i) => [x, rssAfter[i + 1]!] as const)) {
      if (a.r !== b.r) continue;
      console.log(
        `coordinator RSS at the last scrape, ${a.n} -> ${b.n} workers (r=${a.r}): ${mib((b.bytes - a.bytes) / (b.n - a.n))} MiB per added worker`,
      );
    }
  } finally {
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

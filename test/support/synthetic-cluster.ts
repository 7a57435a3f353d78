// A whole synthetic cluster on one host, for the cluster bench and the scale test (docs/scale.md):
// one real `lora-mpt coordinator` process, N synthetic worker sessions in processes of `perProcess`
// sessions each (bench/support/session-pool-main.ts: each session its own gRPC stream and NATS
// connection), a real nats-server the caller started. While the run goes, the coordinator is watched
// from outside as an operator would: /metrics and /api/status polled, its CPU and peak RSS read from
// /proc.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { StatusSnapshot } from '../../src/coordinator/run-status.ts';
import { collectOutput, type LoraCommand } from './lora-output.ts';
import { type LoraProcess, startLoraMpt } from './processes.ts';

const POOL_MAIN = fileURLToPath(new URL('../../bench/support/session-pool-main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface SyntheticClusterOptions {
  readonly workers: number;
  readonly perProcess: number;
  readonly natsUrl: string;
  /** The coordinator's training flags (model, data, batch, steps, output). */
  readonly trainingFlags: readonly string[];
  /** The modelled GPU of every worker session, or 'none'. */
  readonly gpuProfile: string;
  readonly pollMs?: number;
}

/** What an operator watching the coordinator saw, at one poll. */
export interface Observation {
  readonly at: number;
  readonly stepsCommitted: number;
  readonly cpuSeconds: number;
  readonly rssBytes: number;
  readonly peakRssBytes: number;
  readonly metricsBytes: number;
  readonly metricsSeries: number;
  /** Each series of that scrape as name{labels}, without its value. */
  readonly seriesKeys: readonly string[];
  readonly statusBytes: number;
  /** Worker rows /api/status listed, and the workers its summary counts. */
  readonly statusRows: number;
  readonly statusWorkers: number;
  /** nodejs_eventloop_lag_p99_seconds since the previous scrape (prom-client resets it). */
  readonly loopP99Seconds: number;
}

export interface SyntheticCluster {
  readonly coordinator: LoraProcess;
  readonly pools: LoraCommand[];
  readonly observations: Observation[];
  /** Waits for every process to exit; returns the exit codes (coordinator first). */
  finished(): Promise<(number | null)[]>;
  stop(): Promise<void>;
}

export const workerName = (i: number) => `w${String(i).padStart(3, '0')}`;

/** user + system CPU seconds, resident and peak resident bytes of process `pid` (Linux /proc). */
function procFigures(
  pid: number,
): { cpuSeconds: number; rssBytes: number; peakRssBytes: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the command name; 100 ticks/s.
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / 100;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    return { cpuSeconds, rssBytes: kib('VmRSS'), peakRssBytes: kib('VmHWM') };
  } catch {
    return undefined;
  }
}

// Pools still running when the test or bench process exits are killed with it.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export const seriesOf = (metrics: string): string[] =>
  metrics
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.slice(0, l.lastIndexOf(' ')));

/** A session pool process (bench/support/session-pool-main.ts) with these arguments. */
export function startPool(name: string, args: readonly string[]): LoraCommand {
  const child = spawn(process.execPath, ['--import', 'tsx', POOL_MAIN, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = collectOutput(name);
  child.stdout.on('data', (c: Buffer) => out.add(c, 'stdout'));
  child.stderr.on('data', (c: Buffer) => out.add(c, 'stderr'));
  const exit = new Promise<number | null>((resolve) =>
    child.once('close', (code, signal) => {
      out.end(String(code ?? signal));
      resolve(code);
    }),
  );
  live.add(child);
  child.once('close', () => live.delete(child));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    ...out,
    exited: () => exit,
    signal: (s) => {
      if (running()) child.kill(s);
    },
    kill: async (s = 'SIGKILL') => {
      if (!running()) return;
      child.kill(s);
      await exit;
    },
  };
}

export async function startSyntheticCluster(o: SyntheticClusterOptions): Promise<SyntheticCluster> {
  const coordinator = startLoraMpt('coordinator', [
    'coordinator',
    ...o.trainingFlags,
    '--listen',
    '127.0.0.1:0',
    '--nats',
    o.natsUrl,
    '--metrics_port',
    '0',
    '--min_workers',
    String(o.workers),
    '--max_workers',
    String(o.workers),
    '--insecure',
    '--log_format',
    'json',
  ]);
  const started = await coordinator.waitForEvent('run_started', undefined, { ms: 300_000 });
  const grpcPort = Number(started.grpc_port);
  const metricsPort = Number(started.metrics_port);
  const pools: LoraCommand[] = [];
  for (let first = 0; first < o.workers; first += o.perProcess) {
    const ids = Array.from({ length: Math.min(o.perProcess, o.workers - first) }, (_, i) =>
      workerName(first + i),
    );
    pools.push(
      startPool(`pool-${first}`, [
        '--coordinator',
        `127.0.0.1:${grpcPort}`,
        '--nats',
        o.natsUrl,
        '--ids',
        ids.join(','),
        '--gpu_profile',
        o.gpuProfile,
      ]),
    );
  }
  const observations: Observation[] = [];
  const pid = coordinator.child.pid!;
  let polling = true;
  const poll = async () => {
    while (polling) {
      try {
        const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        const status = await (await fetch(`http://127.0.0.1:${metricsPort}/api/status`)).text();
        const page = JSON.parse(status) as StatusSnapshot;
        const proc = procFigures(pid);
        const lag = /^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? (\S+)$/m.exec(metrics);
        if (proc) {
          observations.push({
            at: performance.now(),
            stepsCommitted: coordinator.events().filter((e) => e.event === 'step_committed').length,
            ...proc,
            metricsBytes: Buffer.byteLength(metrics),
            metricsSeries: seriesOf(metrics).length,
            seriesKeys: seriesOf(metrics),
            statusBytes: Buffer.byteLength(status),
            statusRows: page.workers.length,
            statusWorkers: page.worker_summary.total,
            loopP99Seconds: Number(lag?.[1] ?? Number.NaN),
          });
        }
      } catch {
        // The coordinator has exited (or not yet served): nothing to observe.
      }
      await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
    }
  };
  const polled = poll();
  return {
    coordinator,
    pools,
    observations,
    finished: async () => {
      const codes = await Promise.all([coordinator, ...pools].map((p) => p.exited()));
      polling = false;
      await polled;
      return codes;
    },
    stop: async () => {
      polling = false;
      await Promise.all([coordinator, ...pools].map((p) => p.kill()));
      await polled;
    },
  };
}

// A real Prometheus server for tests (Debian package `prometheus`, installed by scripts/setup.sh):
// generated configuration, static targets scraped every second, optional rule files evaluated every
// second, TSDB in a temporary folder. Queries go through its HTTP API, as Grafana's do.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './ports.ts';

export const hasPrometheus = spawnSync('prometheus', ['--version']).status === 0;

export interface ScrapeJob {
  readonly job: string;
  /** host:port of each /metrics endpoint. */
  readonly targets: readonly string[];
}

export interface RangeSeries {
  readonly metric: Readonly<Record<string, string>>;
  readonly values: readonly (readonly [number, string])[];
}

export interface PrometheusServer {
  readonly url: string;
  /** A range query (unix seconds, step in seconds); rejects with Prometheus' error text. */
  queryRange(expr: string, start: number, end: number, step: number): Promise<RangeSeries[]>;
  /** GET an API path (e.g. `/api/v1/rules`), the `data` of the answer. */
  api<T>(path: string, params?: Readonly<Record<string, string | readonly string[]>>): Promise<T>;
  output(): string;
  stop(): Promise<void>;
}

export async function startPrometheus(o: {
  readonly jobs: readonly ScrapeJob[];
  readonly ruleFiles?: readonly string[];
}): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-prometheus-'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: o.ruleFiles ?? [],
    scrape_configs: o.jobs.map((j) => ({ job_name: j.job, static_configs: [{ targets: j.targets }] })),
  };
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stdout?.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (text += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`prometheus exited at start:\n${text}`);
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (i > 300) {
      await stop();
      throw new Error(`prometheus not ready after 30 s:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  async function api<T>(
    path: string,
    params: Readonly<Record<string, string | readonly string[]>> = {},
  ): Promise<T> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params))
      for (const x of typeof v === 'string' ? [v] : v) q.append(k, x);
    const res = await fetch(`${url}${path}?${q}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path} ${q}: ${body.error}`);
    return body.data;
  }
  return {
    url,
    api,
    async queryRange(expr, start, end, step) {
      const data = await api<{ resultType: string; result: RangeSeries[] }>('/api/v1/query_range', {
        query: expr,
        start: String(start),
        end: String(end),
        step: String(step),
      });
      return data.result;
    },
    output: () => text,
    stop,
  };
}

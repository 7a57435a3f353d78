import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { PROTOCOL_VERSION } from '../../src/protocol/handshake.ts';
import { hasChromium, launchChromium } from '../support/chromium.ts';
import { alertRules, dashboard, dashboardExpressions, fillVariables } from '../support/dashboard.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { freePort } from '../support/ports.ts';
import { type LoraEvent, type LoraProcess, startLoraMpt } from '../support/processes.ts';
import { hasPrometheus, type PrometheusServer, startPrometheus } from '../support/prometheus.ts';
import { ALERT_RULES, ALERT_TESTS, hasPromtool, promtool } from '../support/promtool.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// Observability as a user meets it: a real Prometheus scrapes a real distributed run (nats-server,
// coordinator, two workers) every second while real headless Chromium watches the coordinator's
// status page; afterwards every expression of the shipped Grafana dashboard is evaluated over the
// run through Prometheus' HTTP API, and the shipped alert rules are loaded and unit-tested.
// Where the screenshot goes (git-ignored):
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

const missing = [
  hasPrometheus ? '' : 'prometheus',
  hasPromtool ? '' : 'promtool',
  hasChromium ? '' : 'chromium',
].filter(Boolean);
const needsTools =
  missing.length === 0 || process.env.CI
    ? {}
    : { skip: `${missing.join(', ')} not installed: run bash scripts/setup.sh` };

// Series that count trouble: zero is the right value in a healthy run.
// Counts of trouble are 0 in a healthy run; and the tiny model loads within a scrape interval, so
// the workers' 'loading' and 'ready' states may never be scraped (synced must be).
const ZERO_IS_RIGHT = (q: { panel: string }, metric: Readonly<Record<string, string>>) =>
  q.panel === 'Trouble' ||
  metric.event === 'requeued' ||
  metric.state === 'loading' ||
  metric.state === 'ready';

describe('observability of a distributed run', needsTools, () => {
  let run: TinyRun;
  let nats: NatsServer;
  let prometheus: PrometheusServer;
  let browser: Browser;
  let page: Page;
  let coordinator: LoraProcess;
  const workers: LoraProcess[] = [];
  const ports = { coordinator: 0, w0: 0, w1: 0 };
  let runId = '';
  let totalSteps = 0;
  let start = 0;
  let end = 0;

  before(async () => {
    run = await tinyRun([0, 400]);
    nats = await startNats();
    ports.coordinator = await freePort();
    ports.w0 = await freePort();
    ports.w1 = await freePort();
    prometheus = await startPrometheus({
      jobs: [
        { job: 'lora-mpt-coordinator', targets: [`127.0.0.1:${ports.coordinator}`] },
        { job: 'lora-mpt-worker', targets: [`127.0.0.1:${ports.w0}`, `127.0.0.1:${ports.w1}`] },
      ],
      ruleFiles: [ALERT_RULES],
    });
    start = Math.floor(Date.now() / 1000);
    coordinator = startLoraMpt('coordinator', [
      'coordinator',
      ...runArgs(run, join(run.dir, 'out'), {
        batch_size: 16,
        micro_batch_size: 2,
        max_steps: 60,
        cutoff_len: 64,
        val_set_size: 16,
        eval_steps: 10,
        save_steps: 20,
        learning_rate: '1e-3',
      }),
      ...['--listen', '127.0.0.1:0', '--nats', nats.url, '--min_workers', '2'],
      ...['--metrics_port', String(ports.coordinator), '--metrics_host', '127.0.0.1', '--insecure'],
    ]);
    const started = await coordinator.waitForEvent('run_started', undefined, { ms: 120_000 });
    runId = String(started.run_id);
    totalSteps = Number(started.total_steps);
    // The page is open before any worker joins; it polls as a user's browser would.
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    await page.goto(`http://127.0.0.1:${ports.coordinator}/`);
    for (const id of ['w0', 'w1'] as const) {
      workers.push(
        startLoraMpt(id, [
          'worker',
          ...['--coordinator', `127.0.0.1:${started.grpc_port}`, '--nats', nats.url, '--worker_id', id],
          ...['--metrics_port', String(ports[id]), '--metrics_host', '127.0.0.1', '--insecure'],
        ]),
      );
    }
  });

  after(async () => {
    await browser?.close();
    await Promise.all([coordinator, ...workers].map((p) => p?.kill()));
    await prometheus?.stop();
    await nats?.stop();
    run?.cleanup();
  });

  const committed = (step: number): LoraEvent | undefined =>
    coordinator.events().find((e) => e.event === 'step_committed' && e.step === step);

  it('shows the run on the coordinator status page in Chromium while it trains', async () => {
    // A string, not a function: it runs in the page as written (no transpiler helpers).
    // After the first evaluation (step 10 of 60), so the chart has both curves.
    const drawn = 'Number(document.getElementById("eval-line")?.dataset.points) >= 1';
    await page.waitForFunction(
      `Number(document.getElementById("step")?.textContent) >= 10 && ${drawn}`,
      undefined,
      {
        timeout: 180_000,
        polling: 500,
      },
    );
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true });
    const text = async (selector: string) => (await page.locator(selector).textContent()) ?? '';
    const line = page.locator('#loss-line');
    const rows = page.locator('#workers tbody tr');
    const shown = {
      runId: await text('#run-id'),
      step: Number(await text('#step')),
      total: Number(await text('#total-steps')),
      loss: Number(await text('#loss')),
      evalLoss: Number(await text('#eval-loss')),
      evalPoints: Number(await page.locator('#eval-line').getAttribute('data-points')),
      tps: await text('#tps'),
      eta: await text('#eta'),
      lossPoints: Number(await line.getAttribute('data-points')),
      drawn: ((await line.getAttribute('points')) ?? '').trim().split(/\s+/).filter(Boolean),
      workers: await Promise.all(
        (await rows.all()).map(async (tr) => ({
          id: await tr.getAttribute('data-worker'),
          backend: await tr.locator('.backend').textContent(),
          state: await tr.locator('.state').textContent(),
          microBatches: Number(await tr.locator('.micro-batches').textContent()),
          heartbeat: await tr.locator('.heartbeat').textContent(),
        })),
      ),
      events: await Promise.all(
        (await page.locator('#events li').all()).map((li) => li.getAttribute('data-event')),
      ),
    };
    assert.equal(shown.runId, runId);
    assert.equal(shown.total, totalSteps);
    const event = committed(shown.step);
    assert.ok(event, `the page shows step ${shown.step}, which the coordinator committed`);
    assert.ok(
      Math.abs(shown.loss - Number(event.loss)) < 1e-4,
      `page loss ${shown.loss}, event ${event.loss}`,
    );
    const evals = coordinator.events().filter((e) => e.event === 'eval_done' && e.step! <= shown.step);
    assert.equal(shown.evalPoints, evals.length, 'one eval point per evaluation so far');
    const lastEval = Number(evals.at(-1)?.eval_loss);
    assert.ok(
      Math.abs(shown.evalLoss - lastEval) < 1e-4,
      `page eval loss ${shown.evalLoss}, event ${lastEval}`,
    );
    assert.match(shown.tps, /^\d+$/);
    assert.match(shown.eta, /\d+s$/);
    assert.ok(shown.lossPoints >= 10, `${shown.lossPoints} loss points`);
    assert.equal(shown.drawn.length, shown.lossPoints, 'one drawn point per committed step');
    for (const p of shown.drawn) {
      const [x, y] = p.split(',').map(Number);
      assert.ok(x! >= 0 && x! <= 900 && y! >= 0 && y! <= 280, `point ${p} inside the chart`);
    }
    const backends = Object.fromEntries(
      workers.map((w) => [w.name, w.events().find((e) => e.event === 'backend_selected')?.backend]),
    );
    assert.deepEqual(
      shown.workers.map((w) => [w.id, w.backend, w.state]),
      [
        ['w0', backends.w0, 'synced'],
        ['w1', backends.w1, 'synced'],
      ],
    );
    for (const w of shown.workers) {
      assert.ok(w.microBatches > 0, `${w.id} computed micro-batches`);
      assert.match(w.heartbeat ?? '', /^\d+\.\d s ago$/);
    }
    assert.ok(
      shown.events.includes('worker_joined') && shown.events.includes('worker_synced'),
      `${shown.events}`,
    );
  });

  it('serves /metrics that promtool check metrics accepts, on the coordinator and each worker', async () => {
    for (const [name, port] of Object.entries(ports)) {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(text, /^lora_mpt_/m, name);
      const r = promtool(['check', 'metrics'], text);
      assert.ok(r.ok, `${name}: ${r.output}`);
      // What runs, for joins: the coordinator computes nothing; a worker names its backend and device.
      const info =
        /^lora_mpt_build_info\{version="([^"]+)",protocol="(\d+)",backend="([^"]+)",device="([^"]+)"/m.exec(
          text,
        );
      assert.ok(info, `${name}: lora_mpt_build_info`);
      assert.equal(
        info[1],
        JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version,
      );
      assert.equal(Number(info[2]), PROTOCOL_VERSION);
      if (name === 'coordinator') assert.deepEqual([info[3], info[4]], ['none', 'none']);
      else
        assert.deepEqual(
          [['tensorflow', 'wasm', 'cpu'].includes(info[3] as string), info[4]],
          [true, 'cpu'],
          name,
        );
      assert.match(text, /^process_resident_memory_bytes\{/m, `${name}: Node's standard process metrics`);
    }
  });

  it('finishes the run: the coordinator and both workers exit 0', async () => {
    assert.equal(await coordinator.exited(), 0, coordinator.output());
    for (const w of workers) assert.equal(await w.exited(), 0, w.output());
    end = Math.ceil(Date.now() / 1000);
    assert.ok(committed(totalSteps));
  });

  it('labels every lora_mpt series of every process with run_id, workers with worker, no per-step values', async () => {
    const series = await prometheus.api<Record<string, string>[]>('/api/v1/series', {
      'match[]': '{__name__=~"lora_mpt_.+"}',
      start: String(start),
      end: String(end),
    });
    assert.ok(series.length > 50, `${series.length} series`);
    const jobs = new Set<string>();
    const values = new Map<string, Set<string>>();
    for (const s of series) {
      jobs.add(`${s.job}/${s.instance}`);
      assert.equal(s.run_id, runId, `${s.__name__} of ${s.job} without run_id ${runId}`);
      if (s.job === 'lora-mpt-worker')
        assert.match(s.worker ?? '', /^w[01]$/, `${s.__name__} without worker`);
      for (const [k, v] of Object.entries(s)) {
        if (k === '__name__' || k === 'le') continue;
        values.set(k, (values.get(k) ?? new Set()).add(v));
      }
    }
    assert.equal(jobs.size, 3, `scraped ${[...jobs].join(', ')}`);
    for (const label of ['step', 'micro_batch', 'generation'])
      assert.ok(!values.has(label), `a ${label} label`);
    for (const [label, vs] of values)
      assert.ok(vs.size <= 12, `label ${label} has ${vs.size} values: ${[...vs]}`);
    const runs = await prometheus.api<string[]>('/api/v1/label/run_id/values', {
      'match[]': 'lora_mpt_step',
      start: String(start),
      end: String(end),
    });
    assert.deepEqual(runs, [runId], "the dashboard's run variable offers this run");
  });

  it('gives every expression of the dashboard data over the run, non-zero where it measures work', async () => {
    const variable = dashboard().templating.list.find((v) => v.name === 'run_id');
    assert.equal(variable?.definition, 'label_values(lora_mpt_step, run_id)');
    const queries = dashboardExpressions();
    assert.ok(queries.length >= 25, `${queries.length} expressions`);
    const empty: string[] = [];
    const zero: string[] = [];
    for (const q of queries) {
      const expr = fillVariables(q.expr, { runId, rateInterval: '5s' });
      const result = await prometheus.queryRange(expr, start, end, 1);
      if (result.length === 0) {
        empty.push(`${q.panel} ${q.refId}: ${expr}`);
        continue;
      }
      for (const s of result) {
        const nonZero = s.values.some(([, v]) => Number(v) !== 0 && Number.isFinite(Number(v)));
        if (!nonZero && !ZERO_IS_RIGHT(q, s.metric))
          zero.push(`${q.panel} ${q.refId} ${JSON.stringify(s.metric)}`);
      }
    }
    assert.deepEqual(empty, [], 'expressions without any series');
    assert.deepEqual(zero, [], 'series that measure work but stayed 0');
  });

  it('loads the alert rules into Prometheus, which evaluates each without error; promtool tests them', async () => {
    const data = await prometheus.api<{
      groups: { rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[] }[];
    }>('/api/v1/rules');
    const rules = data.groups.flatMap((g) => g.rules);
    assert.deepEqual(
      rules.map((r) => r.name).sort(),
      alertRules()
        .map((r) => r.alert)
        .sort(),
    );
    for (const r of rules) {
      assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
      assert.ok(!r.lastEvaluation.startsWith('0001'), `${r.name} was never evaluated`);
    }
    const tested = promtool(['test', 'rules', ALERT_TESTS]);
    assert.ok(tested.ok, tested.output);
  });
});

// The coordinator's memory per worker (issue #21: "RSS growth linear and under 2 MiB per worker"),
// measured properly: ONE real `lora-mpt coordinator` process, with a probe loaded beside it
// (support/memory-probe.ts: full GC on request, process.memoryUsage(), heap snapshots), is read
// before any worker joins (the baseline) and after 32, 64, 128 and 256 synthetic workers have joined
// in waves (sessions 32 to a process, each its own gRPC stream and NATS connection), each time just
// after a step committed with all of them synced. Prints RSS, heap used, external and arrayBuffers at
// each size and their slope per worker (least squares over the sizes) against the 2 MiB target.
// MEMORY_SIZES=32,64 picks the sizes; MEMORY_HEAP_DIFF=1 also writes a heap snapshot at the smallest
// and largest size and prints what grew most per worker, by kind of object.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mptConfigJson } from '../src/families/mpt/random-checkpoint.ts';
import { collectOutput, type OutputCollector } from '../test/support/lora-output.ts';
import { startNats } from '../test/support/nats.ts';
import { startPool, workerName } from '../test/support/synthetic-cluster.ts';
import { growthPerWorker, heapKinds } from './support/heap-summary.ts';

const SIZES = (process.env.MEMORY_SIZES ?? '32,64,128,256').split(',').map(Number);
const HEAP_DIFF = process.env.MEMORY_HEAP_DIFF === '1';
const PER_PROCESS = 32;
const TARGET_MIB = 2;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/lora-mpt.mjs');
const PROBE = join(ROOT, 'bench/support/memory-probe.ts');
const ALPACA = join(ROOT, '../shared/data/alpaca_data.json');
const TOKENIZER = join(ROOT, '../shared/data/gpt-neox-20b/tokenizer.json');
// Each micro-batch is modelled on a T4 at MFU 0.001 (tens of ms for this tiny model): steps stay in
// their train phase most of the time and 256 sessions leave some CPU to the coordinator.
const PROFILE = ['--gpu_profile', 't4', '--gpu_mfu', '0.001'];

interface Usage {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** Peak RSS of the process so far (state syncs in flight and the like included). */
  readonly peakRss: number;
  readonly snapshot?: string;
}
type Reading = Usage & { readonly n: number };

const mib = (b: number, d = 2) => (b / 2 ** 20).toFixed(d);

/** Least-squares slope of y over x. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return num / den;
}

function measure(child: ChildProcess, snapshot?: string): Promise<Usage> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Usage & { kind?: string }) => {
      if (m.kind !== 'memory') return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m);
    };
    const onExit = () => reject(new Error('the coordinator exited before answering the memory probe'));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send({ kind: 'measure', ...(snapshot ? { snapshot } : {}) });
  });
}

function startCoordinator(flags: readonly string[]): { child: ChildProcess; out: OutputCollector } {
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', '--import', PROBE, BIN, 'coordinator', ...flags],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
  );
  const out = collectOutput('coordinator');
  child.stdout?.on('data', (c: Buffer) => out.add(c, 'stdout'));
  child.stderr?.on('data', (c: Buffer) => out.add(c, 'stderr'));
  child.once('close', (code, signal) => out.end(String(code ?? signal)));
  return { child, out };
}

export async function run(): Promise<void> {
  if (SIZES.some((n) => !Number.isInteger(n) || n < 1) || SIZES.some((n, i) => i > 0 && n <= SIZES[i - 1]!))
    throw new Error(`MEMORY_SIZES=${process.env.MEMORY_SIZES}: expected increasing positive integers`);
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-coord-memory-'));
  const nats = await startNats({ prefer: 'process' });
  const pools: { kill(): Promise<void> }[] = [];
  let coordinator: ChildProcess | undefined;
  try {
    // A config-only model (d_model 64, 2 blocks: 131,072 LoRA values): per-worker state, not the
    // adapter, is what is measured; a state sync is then 1.5 MiB and the all-reduce is cheap.
    mkdirSync(join(dir, 'model'));
    const config = mptConfigJson({ dModel: 64, nHeads: 4, nLayers: 2, vocabSize: 50432, maxSeqLen: 2048 });
    writeFileSync(join(dir, 'model/config.json'), JSON.stringify(config));
    const data = join(dir, 'data.json');
    writeFileSync(
      data,
      JSON.stringify((JSON.parse(readFileSync(ALPACA, 'utf8')) as unknown[]).slice(0, 1024)),
    );
    const largest = SIZES.at(-1)!;
    const started = startCoordinator([
      ...['--base_model', `synthetic:${join(dir, 'model/config.json')}`, '--tokenizer', TOKENIZER],
      ...['--data_path', data, '--output_dir', join(dir, 'out'), '--cutoff_len', '48'],
      // One micro-batch of 1 row per worker per step at the largest size, 4 steps an epoch.
      ...['--batch_size', String(largest), '--micro_batch_size', '1', '--num_epochs', '1000'],
      ...['--val_set_size', '0', '--save_steps', '1000000', '--warmup_steps', '1', '--lora_r', '8'],
      ...['--lora_target_modules', '[Wqkv,out_proj]', '--listen', '127.0.0.1:0', '--nats', nats.url],
      ...['--metrics_port', '0', '--min_workers', String(SIZES[0]), '--max_workers', String(largest)],
      ...['--insecure', '--log_format', 'json'],
    ]);
    coordinator = started.child;
    const out = started.out;
    const begun = await out.waitForEvent('run_started', undefined, { ms: 300_000 });
    const metrics = `http://127.0.0.1:${begun.metrics_port}`;
    const readings: Reading[] = [{ n: 0, ...(await measure(coordinator)) }];
    console.log(
      `\n## Coordinator memory per worker: one coordinator process, workers joining in waves (${SIZES.join(' / ')}), ${PER_PROCESS} synthetic sessions a process, one nats-server; full GC (two passes) before each reading, just after a step committed with every worker synced`,
    );
    const line = (r: Reading) =>
      `${String(r.n).padStart(4)} workers: RSS ${mib(r.rss, 1)} MiB, heap used ${mib(r.heapUsed, 1)} MiB, external ${mib(r.external, 1)} MiB (arrayBuffers ${mib(r.arrayBuffers, 1)} MiB), peak RSS so far ${mib(r.peakRss, 1)} MiB; loadavg ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`;
    console.log(line(readings[0]!));
    let joined = 0;
    for (const n of SIZES) {
      for (let first = joined; first < n; first += PER_PROCESS) {
        const ids = Array.from({ length: Math.min(PER_PROCESS, n - first) }, (_, i) => workerName(first + i));
        pools.push(
          startPool(`pool-${first}`, [
            ...['--coordinator', `127.0.0.1:${begun.grpc_port}`, '--nats', nats.url],
            ...['--ids', ids.join(','), ...PROFILE],
          ]),
        );
      }
      joined = n;
      // Every one of the n synced, then a whole step committed after the last of them was.
      const synced = new Set<string>();
      await out.waitForEvent('worker_synced', (e) => synced.add(String(e.worker)).size >= n, { ms: 600_000 });
      const from = out.events().length;
      await out.waitForEvent('step_committed', undefined, { ms: 600_000, from });
      await out.waitForEvent('step_committed', undefined, { ms: 600_000, from: out.events().length });
      // As an operator's scrapes would: whatever the pages keep is counted.
      await (await fetch(`${metrics}/metrics`)).text();
      await (await fetch(`${metrics}/api/status`)).text();
      const snap =
        HEAP_DIFF && (n === SIZES[0] || n === largest) ? join(dir, `${n}.heapsnapshot`) : undefined;
      const r: Reading = { n, ...(await measure(coordinator, snap)) };
      readings.push(r);
      console.log(line(r));
    }
    const sized = readings.slice(1);
    const xs = sized.map((r) => r.n);
    for (const k of ['rss', 'heapUsed', 'external', 'arrayBuffers'] as const) {
      const s = slope(
        xs,
        sized.map((r) => r[k]),
      );
      const overBase = (sized.at(-1)![k] - readings[0]![k]) / largest;
      console.log(
        `${k.padEnd(12)} per worker: ${mib(s, 3)} MiB (slope over ${xs.join(', ')}); ${mib(overBase, 3)} MiB (${largest} workers over the baseline)${k === 'rss' ? ` — target < ${TARGET_MIB} MiB: ${s < TARGET_MIB * 2 ** 20 ? 'met' : 'NOT met'}` : ''}`,
      );
    }
    if (HEAP_DIFF && sized.length > 1) {
      // Writing a snapshot takes native memory the process may keep: RSS after the first is inflated.
      console.log(
        '(RSS after the first heap snapshot includes what writing it took: read RSS without MEMORY_HEAP_DIFF)',
      );
      const [a, b] = [sized[0]!, sized.at(-1)!];
      if (!a.snapshot || !b.snapshot) throw new Error('the probe wrote no heap snapshot');
      console.log(`heap growth per added worker, ${a.n} -> ${b.n} workers (self bytes, by kind):`);
      for (const g of growthPerWorker(heapKinds(a.snapshot), heapKinds(b.snapshot), a.n, b.n, 25))
        console.log(
          `  ${g.bytes.toFixed(0).padStart(8)} B  ${g.count.toFixed(1).padStart(7)} objects  ${g.kind}`,
        );
    }
  } finally {
    coordinator?.kill('SIGKILL');
    await Promise.all(pools.map((p) => p.kill()));
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

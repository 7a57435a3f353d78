// `npm run bench -- mpt7b`: MPT-7B at full scale on this machine. Writes once (cached in
// ~/.cache/lora-mpt/mpt7b-random, outside the repository) a random-weight checkpoint with mosaicml/mpt-7b's
// exact config.json as the Hub ships it (bf16, two torch .bin shards + index), then in a child process
// loads it with --load_8bit on tensorflow through the same path as finetune and workers (memory check
// first), runs LoRA steps (r=8 on Wqkv) and prints load time, peak RSS, step time, tok/s and GFLOP/s.
// LORA_MPT_BENCH_SAFETENSORS=1 also writes the safetensors copy (mpt7b-random-safetensors).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statfsSync, writeFileSync } from 'node:fs';
import { availableParallelism, freemem, homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMptConfig } from '../src/families/mpt/config.ts';
import { GIB, gib, planMemory } from '../src/model/memory-plan.ts';
import { loadModelCompute } from '../src/worker/model-compute.ts';
import { midBatch, type StepShape, stepFlops } from './support/mid-mpt.ts';
import { MPT_7B_CONFIG } from './support/mpt-7b-config.ts';
import { mptTensors, writeSyntheticCheckpoint } from './support/synthetic-checkpoint.ts';

const STAMP = 'lora-mpt-bench.complete';
const CHECKPOINT_BYTES = 13.3e9;
const LORA = {
  lora: { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['Wqkv'] },
  seed: 1,
} as const;

export function cacheRoot(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'lora-mpt');
}

export async function ensureCheckpoint(dir: string, format: 'bin' | 'safetensors'): Promise<void> {
  if (existsSync(join(dir, STAMP))) return;
  mkdirSync(dir, { recursive: true });
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  if (free < CHECKPOINT_BYTES * 1.1) {
    throw new Error(`${dir}: ${(free / 1e9).toFixed(1)} GB free, the ${format} checkpoint needs ~13.3 GB`);
  }
  const t0 = performance.now();
  const c = MPT_7B_CONFIG as { d_model: number; n_layers: number; vocab_size: number };
  const tensors = mptTensors(c.d_model, c.n_layers, c.vocab_size);
  const bytes = await writeSyntheticCheckpoint(dir, { ...MPT_7B_CONFIG }, tensors, format, 'BF16', 2);
  writeFileSync(join(dir, STAMP), `${bytes}\n`);
  console.log(
    `wrote ${dir}: ${(bytes / 1e9).toFixed(2)} GB of bf16 ${format} in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
}

interface StepRecord {
  readonly rows: number;
  readonly seqLen: number;
  readonly checkpointing: boolean;
  readonly seconds: number[];
  readonly plannedGib: number;
}

async function child(dir: string, runs: readonly [number, number, boolean, number][]): Promise<void> {
  const config = parseMptConfig(MPT_7B_CONFIG, 'MPT-7B config.json');
  const threads = availableParallelism();
  const t0 = performance.now();
  const settings = { ...LORA, load8bit: true, gradientCheckpointing: runs.some((r) => r[2]) };
  const [rows0, t0len] = runs[0] as [number, number, boolean, number];
  const loaded = await loadModelCompute(
    dir,
    'tensorflow',
    settings,
    { microBatchSize: rows0, cutoffLen: t0len, memoryGib: 0 },
    { numThreads: threads, numThreadsSource: 'the benchmark' },
  );
  const loadSeconds = (performance.now() - t0) / 1000;
  const rssAfterLoad = process.memoryUsage().rss;
  console.error(`loaded in ${loadSeconds.toFixed(1)} s, RSS ${gib(rssAfterLoad)} GiB`);
  const params = new Float32Array(loaded.layout.size);
  for (let i = 0; i < params.length; i++) params[i] = ((i * 2654435761) % 1000) / 1e5 - 0.005;
  loaded.compute.setAdapter(params);
  const steps: StepRecord[] = [];
  for (const [rows, seqLen, checkpointing, count] of runs) {
    const s: StepShape = { d: 4096, h: 32, l: 32, v: 50432, t: seqLen, b: rows, r: 8, promptFraction: 0.4 };
    const compute = checkpointing === settings.gradientCheckpointing ? loaded.compute : null;
    if (compute === null) throw new Error('one gradient-checkpointing setting per child');
    const mb = { id: 0, step: 0, ...midBatch(s), attentionMask: new Int32Array(rows * seqLen).fill(1) };
    const seconds: number[] = [];
    for (let i = 0; i < count; i++) {
      const a = performance.now();
      await compute.train({ ...mb, id: i });
      seconds.push((performance.now() - a) / 1000);
      console.error(`${rows}x${seqLen} step ${i + 1}/${count}: ${seconds[i]?.toFixed(1)} s`);
    }
    const plan = planMemory(config, {
      layout: 'batched',
      load8bit: true,
      gradientCheckpointing: checkpointing,
      microBatchSize: rows,
      seqLen,
      lora: { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['Wqkv'] },
      training: true,
    });
    steps.push({ rows, seqLen, checkpointing, seconds, plannedGib: plan.total / GIB });
  }
  const out = {
    backend: loaded.backendSummary,
    threads,
    parameters: loaded.parameters,
    loadSeconds,
    rssAfterLoad,
    maxRss: process.resourceUsage().maxRSS * 1024,
    steps,
  };
  console.log(JSON.stringify(out));
}

export async function run(): Promise<void> {
  const dir = join(cacheRoot(), 'mpt7b-random');
  await ensureCheckpoint(dir, 'bin');
  if (process.env.LORA_MPT_BENCH_SAFETENSORS === '1') {
    await ensureCheckpoint(join(cacheRoot(), 'mpt7b-random-safetensors'), 'safetensors');
  }
  const spec = process.env.LORA_MPT_BENCH_MPT7B_RUNS ?? '1x256:2';
  console.log(`checkpoint ${dir}; machine: ${gib(freemem())} GiB available; runs ${spec}`);
  const child_ = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', dir, spec],
    { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (child_.status !== 0) throw new Error(`the mpt7b child failed (exit ${child_.status})`);
  const r = JSON.parse(child_.stdout.trim().split('\n').pop() as string);
  console.log(r.backend);
  console.log(
    `load (--load_8bit, bf16 .bin shards, memory check first): ${r.loadSeconds.toFixed(1)} s; RSS after load ${gib(r.rssAfterLoad)} GiB; peak RSS of the whole run ${gib(r.maxRss)} GiB`,
  );
  console.log('| micro-batch | checkpointing | planned GiB | step s (each) | tokens/s | GFLOP/s executed |');
  console.log('|---|---|---|---|---|---|');
  for (const s of r.steps as StepRecord[]) {
    const shape: StepShape = {
      d: 4096,
      h: 32,
      l: 32,
      v: 50432,
      t: s.seqLen,
      b: s.rows,
      r: 8,
      promptFraction: 0.4,
    };
    const nl = s.rows * (s.seqLen - Math.floor(0.4 * s.seqLen)); // supervised rows after the shift
    const best = Math.min(...s.seconds);
    console.log(
      `| ${s.rows} x ${s.seqLen} | ${s.checkpointing ? 'on' : 'off'} | ${s.plannedGib.toFixed(1)} | ${s.seconds.map((x) => x.toFixed(1)).join(', ')} | ${((s.rows * s.seqLen) / best).toFixed(1)} | ${(stepFlops(shape, nl) / best / 1e9).toFixed(1)} |`,
    );
  }
}

if (process.argv[2] === '--child' && process.argv[1] === fileURLToPath(import.meta.url)) {
  const runs = (process.argv[4] as string).split(',').map((x) => {
    const m = /^(\d+)x(\d+)(c?):(\d+)$/.exec(x);
    if (m === null) throw new Error(`LORA_MPT_BENCH_MPT7B_RUNS: "${x}" is not ROWSxTOKENS[c]:STEPS`);
    return [Number(m[1]), Number(m[2]), m[3] === 'c', Number(m[4])] as [number, number, boolean, number];
  });
  await child(process.argv[3] as string, runs);
}

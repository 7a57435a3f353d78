// `npm run bench -- llama3-8b`: Llama-3-8B at full scale on this machine, as bench/mpt7b.ts does for
// MPT-7B. Writes once (cached in ~/.cache/lora-mpt/llama3-8b-random, outside the repository) a
// random-weight checkpoint with Meta-Llama-3-8B's config (src/families/llama/named-configs.ts) in the
// Hub's layout: bf16 safetensors in four shards (model-0000N-of-00004.safetensors) plus
// model.safetensors.index.json. Then, in a child process, loads it with --load_8bit on tensorflow
// through the path finetune and workers use (memory check first), runs LoRA steps (r=8 on PEFT's
// llama default, q_proj and v_proj) and prints load time, peak RSS (against the 24 GiB card the
// what-fits table names), step time, tok/s and GFLOP/s by src/model/flops.ts's count.
// LORA_MPT_BENCH_LLAMA_RUNS: micro-batch shapes, e.g. "1x256:2,2x512c:1" (c: gradient checkpointing).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statfsSync, writeFileSync } from 'node:fs';
import { availableParallelism, freemem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loraTargets } from '../src/checkpoint/lora-targets.ts';
import { LLAMA_NAMED_CONFIGS } from '../src/families/llama/named-configs.ts';
import { parseModelConfig } from '../src/families/registry.ts';
import { flopsModelOf, trainStepFlops } from '../src/model/flops.ts';
import { GIB, gib, planMemory } from '../src/model/memory-plan.ts';
import { loadModelCompute } from '../src/worker/model-compute.ts';
import { cacheRoot } from './mpt7b.ts';
import { midBatch } from './support/mid-mpt.ts';
import { writeSyntheticCheckpoint } from './support/synthetic-checkpoint.ts';

const STAMP = 'lora-mpt-bench.complete';
const CONFIG_JSON = LLAMA_NAMED_CONFIGS['llama-3-8b'] as Record<string, unknown>;
const CHECKPOINT_BYTES = 16.1e9;
const SHARDS = 4; // as meta-llama/Meta-Llama-3-8B ships its safetensors
const CARD_GIB = 24;
const PROMPT_FRACTION = 0.4;
const LORA = { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['q_proj', 'v_proj'] } as const;

const config = () => parseModelConfig(CONFIG_JSON, 'Meta-Llama-3-8B config.json');

async function ensureCheckpoint(dir: string): Promise<void> {
  if (existsSync(join(dir, STAMP))) return;
  mkdirSync(dir, { recursive: true });
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  if (free < CHECKPOINT_BYTES * 1.1)
    throw new Error(`${dir}: ${(free / 1e9).toFixed(1)} GB free, the checkpoint needs ~16.1 GB`);
  const t0 = performance.now();
  // The family's own list of every tensor a Llama checkpoint holds, in its order.
  const tensors = [...config().arch.weightShapes()].map(([name, shape]) => ({ name, shape }));
  const bytes = await writeSyntheticCheckpoint(dir, CONFIG_JSON, tensors, 'safetensors', 'BF16', SHARDS);
  writeFileSync(join(dir, STAMP), `${bytes}\n`);
  console.log(
    `wrote ${dir}: ${(bytes / 1e9).toFixed(2)} GB of bf16 safetensors in ${SHARDS} shards, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
}

interface Run {
  readonly rows: number;
  readonly seqLen: number;
  readonly checkpointing: boolean;
  readonly count: number;
}

interface StepRecord extends Omit<Run, 'count'> {
  readonly seconds: number[];
  readonly plannedGib: number;
}

/** "1x256:2,2x512c:1" -> runs; names the bad entry. */
function parseRuns(spec: string): Run[] {
  return spec.split(',').map((part) => {
    const m = /^(\d+)x(\d+)(c?):(\d+)$/.exec(part.trim());
    if (!m) throw new Error(`LORA_MPT_BENCH_LLAMA_RUNS: "${part}" is not ROWSxLEN[c]:COUNT`);
    return { rows: Number(m[1]), seqLen: Number(m[2]), checkpointing: m[3] === 'c', count: Number(m[4]) };
  });
}

async function child(dir: string, runs: readonly Run[]): Promise<void> {
  const c = config();
  const checkpointing = runs[0]?.checkpointing ?? false;
  if (runs.some((r) => r.checkpointing !== checkpointing))
    throw new Error('LORA_MPT_BENCH_LLAMA_RUNS: one gradient-checkpointing setting per run');
  const threads = availableParallelism();
  const t0 = performance.now();
  const loaded = await loadModelCompute(
    dir,
    'tensorflow',
    { lora: LORA, seed: 1, load8bit: true, gradientCheckpointing: checkpointing },
    { microBatchSize: runs[0]?.rows ?? 1, cutoffLen: runs[0]?.seqLen ?? 256, memoryGib: 0 },
    { numThreads: threads, numThreadsSource: 'the benchmark' },
  );
  const loadSeconds = (performance.now() - t0) / 1000;
  const rssAfterLoad = process.memoryUsage().rss;
  console.error(`loaded in ${loadSeconds.toFixed(1)} s, RSS ${gib(rssAfterLoad)} GiB`);
  // B = 0 would make every step the same as the base model's; a fixed non-zero adapter instead.
  const params = new Float32Array(loaded.layout.size);
  for (let i = 0; i < params.length; i++) params[i] = ((i * 2654435761) % 1000) / 1e5 - 0.005;
  loaded.compute.setAdapter(params);
  const steps: StepRecord[] = [];
  for (const run of runs) {
    const batch = midBatch({
      d: c.dModel,
      h: c.nHeads,
      l: c.nLayers,
      v: c.vocabSize,
      t: run.seqLen,
      b: run.rows,
      r: LORA.r,
      promptFraction: PROMPT_FRACTION,
    });
    const mb = { id: 0, step: 0, ...batch, attentionMask: new Int32Array(run.rows * run.seqLen).fill(1) };
    const seconds: number[] = [];
    for (let i = 0; i < run.count; i++) {
      const a = performance.now();
      await loaded.compute.train({ ...mb, id: i });
      seconds.push((performance.now() - a) / 1000);
      console.error(`${run.rows}x${run.seqLen} step ${i + 1}/${run.count}: ${seconds[i]?.toFixed(1)} s`);
    }
    const plan = planMemory(c, {
      layout: 'batched',
      load8bit: true,
      gradientCheckpointing: run.checkpointing,
      microBatchSize: run.rows,
      seqLen: run.seqLen,
      lora: LORA,
      training: true,
    });
    steps.push({ ...run, seconds, plannedGib: plan.total / GIB });
  }
  const maxRss = process.resourceUsage().maxRSS * 1024;
  const out = { backend: loaded.backendSummary, threads, loadSeconds, rssAfterLoad, maxRss, steps };
  console.log(JSON.stringify(out));
}

export async function run(): Promise<void> {
  const dir = join(cacheRoot(), 'llama3-8b-random');
  const spec = process.env.LORA_MPT_BENCH_LLAMA_RUNS ?? '1x256:2';
  parseRuns(spec);
  await ensureCheckpoint(dir);
  console.log(`checkpoint ${dir}; machine: ${gib(freemem())} GiB available; runs ${spec}`);
  const child_ = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', dir, spec],
    { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (child_.status !== 0) throw new Error(`the llama3-8b child failed (exit ${child_.status})`);
  const r = JSON.parse(child_.stdout.trim().split('\n').pop() as string);
  console.log(r.backend);
  const peak = r.maxRss as number;
  console.log(
    `load (--load_8bit, bf16 safetensors in ${SHARDS} shards, memory check first): ${r.loadSeconds.toFixed(1)} s; RSS after load ${gib(r.rssAfterLoad)} GiB; peak RSS ${gib(peak)} GiB, ${peak <= CARD_GIB * GIB ? 'within' : 'OVER'} ${CARD_GIB} GiB`,
  );
  const c = config();
  const flopsModel = flopsModelOf(c, LORA.r, loraTargets(c, LORA));
  console.log('| micro-batch | checkpointing | planned GiB | step s (each) | tokens/s | GFLOP/s executed |');
  console.log('|---|---|---|---|---|---|');
  for (const s of r.steps as StepRecord[]) {
    // Supervised positions: the labels past the prompt part (midBatch masks the first 40%).
    const logitRows = s.rows * (s.seqLen - Math.floor(PROMPT_FRACTION * s.seqLen));
    const flops = trainStepFlops(flopsModel, { rows: s.rows, seqLen: s.seqLen, logitRows });
    const best = Math.min(...s.seconds);
    console.log(
      `| ${s.rows} x ${s.seqLen} | ${s.checkpointing ? 'on' : 'off'} | ${s.plannedGib.toFixed(1)} | ${s.seconds.map((x) => x.toFixed(1)).join(', ')} | ${((s.rows * s.seqLen) / best).toFixed(1)} | ${(flops / best / 1e9).toFixed(1)} |`,
    );
  }
}

if (process.argv[2] === '--child' && process.argv[1] === fileURLToPath(import.meta.url)) {
  await child(process.argv[3] as string, parseRuns(process.argv[4] as string));
}

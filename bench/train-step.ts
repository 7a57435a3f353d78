// One LoRA training step (forward + backward, r=8 on Wqkv) of a mid-size MPT (bench/support/mid-mpt.ts):
// ours on `tensorflow` at 1 and 2 intra-op threads and on `wasm` (one thread), and PyTorch + PEFT at
// 1 and 2 threads (tools/reference/bench_train_step.py, when /opt/refpy exists), same shapes and
// masking. Every configuration is a child process that runs one step per request; the rounds
// interleave them, so on a shared machine all see the same load. Two shapes: the mid one (T=256,
// micro-batch 4) and the seed's (cutoff 512, micro-batch 4). Reported: tokens/s, the ratio to
// PyTorch at equal threads (median of per-round ratios), and the step's GFLOP/s against the matmul
// peak measured in the same process, at the same threads, in the same rounds.
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MID, type StepShape, stepFlops } from './support/mid-mpt.ts';
import { Peer } from './support/peer.ts';

const ROUNDS = 5;
const PYTHON = '/opt/refpy/bin/python';
const OURS = fileURLToPath(new URL('./support/train-step-peer.ts', import.meta.url));
const TORCH = fileURLToPath(new URL('../tools/reference/bench_train_step.py', import.meta.url));

interface Config {
  readonly name: string;
  readonly ours: boolean;
  readonly threads: number;
  readonly start: () => Promise<Peer | string>;
}

function configs(s: StepShape): Config[] {
  const ours = (backend: string, threads: number): Config => ({
    name: `ours ${backend} ${threads}t`,
    ours: true,
    threads,
    start: () =>
      Peer.start(`ours ${backend} ${threads}t`, process.execPath, [
        '--import',
        'tsx',
        OURS,
        backend,
        String(threads),
        String(s.t),
        String(s.b),
      ]),
  });
  const torch = (threads: number): Config => ({
    name: `PyTorch+PEFT ${threads}t`,
    ours: false,
    threads,
    start: async () => {
      if (!existsSync(PYTHON)) return `${PYTHON} not found`;
      const { d, h, l, v, t, b, r, promptFraction } = s;
      const shape = [`--d=${d}`, `--h=${h}`, `--l=${l}`, `--v=${v}`, `--t=${t}`, `--b=${b}`, `--r=${r}`];
      const rest = [`--prompt_fraction=${promptFraction}`, `--threads=${threads}`, '--serve'];
      return Peer.start(`PyTorch ${threads}t`, PYTHON, [TORCH, ...shape, ...rest]);
    },
  });
  return [ours('tensorflow', 1), ours('tensorflow', 2), ours('wasm', 1), torch(1), torch(2)];
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const f0 = (x: number) => x.toFixed(0);

async function runShape(s: StepShape, label: string, extras: boolean): Promise<void> {
  const tokens = s.b * s.t;
  console.log(
    `\n## ${label}: D=${s.d}, H=${s.h}, L=${s.l}, V=${s.v}, T=${s.t}, micro-batch ${s.b}, LoRA r=${s.r} on Wqkv, first ${s.promptFraction * 100}% of each row unsupervised`,
  );
  const live: {
    c: Config;
    peer: Peer;
    ms: number[];
    peaks: number[];
    square: number[];
    supervised: number;
  }[] = [];
  for (const c of configs(s)) {
    const peer = await c.start(); // one at a time: warm-ups do not compete
    if (typeof peer === 'string') console.log(`  ${c.name}: skipped, ${peer}`);
    else {
      live.push({ c, peer, ms: [], peaks: [], square: [], supervised: 0 });
      if (c.ours) console.log(`  ${c.name}: ${String(peer.ready.summary)} (${String(peer.ready.layout)})`);
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const p of live) {
      if (p.c.ours) {
        const peak = await p.peer.request('peak');
        p.peaks.push(peak.shaped as number);
        p.square.push(peak.square as number);
      }
      const step = await p.peer.request('step');
      p.ms.push(step.ms as number);
      if (p.c.ours) p.supervised = step.supervised as number;
    }
  }
  const torchMs = new Map(live.filter((p) => !p.c.ours).map((p) => [p.c.threads, p.ms]));
  console.log(`  load average ${loadavg()[0]?.toFixed(1)} on ${cpus().length} cores after ${ROUNDS} rounds`);
  console.log(
    '  | run | step ms (median; all) | tokens/s | vs PyTorch same threads | GFLOP/s exec (all rows) | matmul peak GFLOP/s (step GEMM / 2048²) | step / peak |',
  );
  console.log('  |---|---|---|---|---|---|---|');
  for (const p of live) {
    const ms = median(p.ms);
    const tps = tokens / (ms / 1000);
    const theirs = torchMs.get(p.c.threads);
    let vs = '';
    if (p.c.ours && theirs !== undefined && p.c.threads <= 2) {
      const ratios = p.ms.map((o, i) => (theirs[i] as number) / o);
      vs = `**${median(ratios).toFixed(2)}x** (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
    }
    const all = stepFlops(s, tokens) / (ms * 1e6);
    let gf = `${all.toFixed(1)} (all rows)`;
    let peak = '';
    let frac = '';
    if (p.c.ours) {
      const exec = stepFlops(s, p.supervised) / (ms * 1e6);
      const best = Math.max(...p.peaks, ...p.square);
      gf = `${exec.toFixed(1)} (${all.toFixed(1)})`;
      peak = `${f0(Math.max(...p.peaks))} / ${f0(Math.max(...p.square))}`;
      frac = `${f0((100 * exec) / best)}%`;
    }
    console.log(
      `  | ${p.c.name} | ${f0(ms)} (${p.ms.map(f0).join(', ')}) | ${tps.toFixed(0)} | ${vs} | ${gf} | ${peak} | ${frac} |`,
    );
  }
  const n = live[0]?.supervised ?? 0;
  console.log(
    `  FLOPs per step: ${(stepFlops(s, n) / 1e9).toFixed(1)} G executed (logits of the ${n} supervised rows), ${(stepFlops(s, tokens) / 1e9).toFixed(1)} G counting every row as PyTorch computes them; peak = best of the rounds' medians, step / peak uses the higher of the two GEMMs`,
  );
  if (extras) {
    for (const p of live.filter((x) => x.c.ours)) {
      const e = await p.peer.request('extras');
      console.log(
        `  ${p.c.name}: one step with gradient checkpointing ${f0(e.checkpointMs as number)} ms, with load_8bit ${f0(e.load8bitMs as number)} ms; ${String(e.numTensors)} live tensors after`,
      );
    }
  }
  for (const p of live) p.peer.stop();
}

export async function run(): Promise<void> {
  await runShape(MID, 'mid MPT, T=256', true);
  await runShape({ ...MID, t: 512 }, "the seed's cutoff_len 512", false);
}

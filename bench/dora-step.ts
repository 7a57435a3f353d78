// What DoRA costs over plain LoRA in a training step, ours against PyTorch + PEFT's: the mid MPT of
// bench/train-step.ts (T=256, micro-batch 4, r=8 on Wqkv, no dropout), ours on tensorflow and
// PyTorch (tools/reference/bench_train_step.py --use_dora, when /opt/refpy exists) at 2 threads, each
// with a LoRA and a DoRA adapter, in interleaved rounds. Our steps include setting the adapter
// weights, where DoRA's weight norms are computed once per step (PEFT computes them in every
// forward). Prints step ms and the DoRA / LoRA ratio of each; never passes or fails on time.
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MID } from './support/mid-mpt.ts';
import { Peer } from './support/peer.ts';

const ROUNDS = 5;
const THREADS = 2;
const PYTHON = '/opt/refpy/bin/python';
const OURS = fileURLToPath(new URL('./support/train-step-peer.ts', import.meta.url));
const TORCH = fileURLToPath(new URL('../tools/reference/bench_train_step.py', import.meta.url));

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function start(who: 'ours' | 'PyTorch+PEFT', variant: 'lora' | 'dora'): Promise<Peer | string> {
  const name = `${who} ${variant === 'dora' ? 'DoRA' : 'LoRA'}`;
  const s = MID;
  if (who === 'ours') {
    const args = ['--import', 'tsx', OURS, 'tensorflow', String(THREADS), String(s.t), String(s.b), variant];
    return Peer.start(name, process.execPath, args);
  }
  if (!existsSync(PYTHON)) return Promise.resolve(`${PYTHON} not found`);
  const shape = [
    `--d=${s.d}`,
    `--h=${s.h}`,
    `--l=${s.l}`,
    `--v=${s.v}`,
    `--t=${s.t}`,
    `--b=${s.b}`,
    `--r=${s.r}`,
  ];
  const rest = [`--prompt_fraction=${s.promptFraction}`, `--threads=${THREADS}`, '--serve'];
  return Peer.start(name, PYTHON, [TORCH, ...shape, ...rest, ...(variant === 'dora' ? ['--use_dora'] : [])]);
}

export async function run(): Promise<void> {
  const s = MID;
  console.log(
    `DoRA vs LoRA step: D=${s.d}, H=${s.h}, L=${s.l}, V=${s.v}, T=${s.t}, micro-batch ${s.b}, r=${s.r} on Wqkv, ${THREADS} threads, ${ROUNDS} interleaved rounds`,
  );
  const live: { name: string; peer: Peer; ms: number[] }[] = [];
  for (const who of ['ours', 'PyTorch+PEFT'] as const) {
    for (const variant of ['lora', 'dora'] as const) {
      const peer = await start(who, variant);
      const name = `${who} ${variant === 'dora' ? 'DoRA' : 'LoRA'}`;
      if (typeof peer === 'string') console.log(`  ${name}: skipped, ${peer}`);
      else live.push({ name, peer, ms: [] });
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const p of live) p.ms.push((await p.peer.request('step')).ms as number);
  }
  console.log(`  load average ${loadavg()[0]?.toFixed(1)} after the rounds`);
  console.log('  | run | step ms (median; all) | DoRA / LoRA (median of per-round ratios) |');
  console.log('  |---|---|---|');
  for (const p of live) {
    let ratio = '';
    if (p.name.endsWith('DoRA')) {
      const lora = live.find((q) => q.name === p.name.replace('DoRA', 'LoRA'));
      if (lora !== undefined) ratio = `${median(p.ms.map((m, i) => m / (lora.ms[i] as number))).toFixed(2)}x`;
    }
    console.log(
      `  | ${p.name} | ${median(p.ms).toFixed(0)} (${p.ms.map((m) => m.toFixed(0)).join(', ')}) | ${ratio} |`,
    );
  }
  for (const p of live) p.peer.stop();
}

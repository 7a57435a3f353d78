// Distributed scaling on this machine: the demo's training (small random-init MPT, real Alpaca data,
// batch 16 of micro-batches of 4) as `finetune` in one process, and as a coordinator with 1 and 2
// worker processes on a local nats-server, on the default backend. Prints the median step time of
// each and the speed-up of 2 workers, in alternating rounds. On tensorflow the cores are split on
// purpose: 1 worker x all cores' threads against N workers x one thread each (TensorFlow's default
// would give every worker all cores and oversubscribe them), which is how the demo's default was
// chosen (docs/backends.md).
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { startDistributedRun } from '../test/support/distributed-run.ts';
import { startNats } from '../test/support/nats.ts';
import { startLoraMpt } from '../test/support/processes.ts';
import { runArgs, tinyRun } from '../test/support/tiny-run.ts';

const STEPS = 12;
const ROUNDS = 3;

function stepSeconds(metricsJsonl: string): number[] {
  const times = readFileSync(metricsJsonl, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { time: string; loss?: number; step: number })
    .filter((r) => r.loss !== undefined)
    .map((r) => Date.parse(r.time));
  return times.slice(1).map((t, i) => (t - times[i]!) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(): Promise<void> {
  // The demo's model size, not the tests' tiny one.
  const run = await tinyRun([0, 4000], {
    dModel: 128,
    nHeads: 4,
    nLayers: 2,
    vocabSize: 50432,
    maxSeqLen: 512,
    seed: 1,
  });
  const nats = await startNats({ prefer: 'process' });
  const flags = (out: string) =>
    runArgs(run, out, {
      batch_size: 16,
      micro_batch_size: 4,
      max_steps: STEPS,
      cutoff_len: 128,
      val_set_size: 0,
      save_steps: 1000,
      lora_r: 16,
      lora_target_modules: '[Wqkv,out_proj,up_proj,down_proj]',
    });
  const rows: [string, number[]][] = [];
  const cores = availableParallelism();
  // One worker gets every core's thread; N workers one thread each (wasm ignores the flag).
  const configs = [1, 2].map((n) => ({ n, threads: n === 1 ? cores : 1 }));
  try {
    const ft = startLoraMpt('finetune', ['finetune', ...flags(join(run.dir, 'ft'))]);
    if ((await ft.exited()) !== 0) throw new Error(ft.output());
    console.log(`\n${/backend .*$/m.exec(ft.output())?.[0] ?? 'backend ?'} (finetune)`);
    rows.push([
      'finetune (1 process, default threads)',
      [median(stepSeconds(join(run.dir, 'ft', 'metrics.jsonl')))],
    ]);
    for (const c of configs) rows.push([`coordinator + ${c.n} worker(s) x ${c.threads} thread(s)`, []]);
    // Rounds alternate the configurations, so a shared machine's load falls on both alike.
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, c] of configs.entries()) {
        const out = join(run.dir, `r${round}-w${c.n}`);
        const d = await startDistributedRun({
          natsUrl: nats.url,
          trainingFlags: flags(out),
          workers: Array.from({ length: c.n }, (_, k) => `w${k}`),
          workerFlags: ['--num_threads', String(c.threads)],
        });
        if ((await d.coordinator.exited()) !== 0) throw new Error(d.coordinator.output());
        await d.stop();
        rows[i + 1]![1].push(median(stepSeconds(join(out, 'metrics.jsonl'))));
      }
    }
  } finally {
    await nats.stop();
    run.cleanup();
  }
  console.log(
    `\n## Demo training, median step time over ${STEPS} steps (16 examples, cutoff 128, d_model 128), ${ROUNDS} alternating rounds; load average ${loadavg()[0]?.toFixed(1)} on ${cores} cores`,
  );
  const ms = (xs: number[]) => xs.map((x) => (x * 1000).toFixed(0)).join(', ');
  for (const [name, s] of rows)
    console.log(`${name.padEnd(44)} ${ms([median(s)]).padStart(6)} ms/step (${ms(s)})`);
  const one = rows[1]![1];
  const two = rows[2]![1];
  const speedups = one.map((o, i) => o / two[i]!);
  console.log(
    `speed-up 2 workers x 1 thread vs 1 worker x ${cores} threads: ${median(speedups).toFixed(2)}x (per round ${speedups.map((x) => x.toFixed(2)).join(', ')})`,
  );
  console.log(
    `distributed overhead, 1 worker vs finetune: ${((median(one) / rows[0]![1][0]! - 1) * 100).toFixed(0)}%`,
  );
}

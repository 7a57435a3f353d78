// Distributed scaling on this machine: the demo's training (small random-init MPT, real Alpaca data,
// batch 16 of micro-batches of 4) as `finetune` in one process, and as a coordinator with 1 and 2
// worker processes on a local nats-server. Prints the median step time of each and the scaling
// efficiency of 2 workers (speed-up / 2). On a 2-core machine the ideal is 2x minus what the
// coordinator, NATS and the all-reduce take.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDistributedRun } from '../test/support/distributed-run.ts';
import { startNats } from '../test/support/nats.ts';
import { startLoraMpt } from '../test/support/processes.ts';
import { runArgs, tinyRun } from '../test/support/tiny-run.ts';

const STEPS = 12;

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
  const rows: [string, number][] = [];
  try {
    const ft = startLoraMpt('finetune', ['finetune', ...flags(join(run.dir, 'ft')), '--backend', 'wasm']);
    if ((await ft.exited()) !== 0) throw new Error(ft.output());
    rows.push(['finetune (1 process)', median(stepSeconds(join(run.dir, 'ft', 'metrics.jsonl')))]);
    for (const n of [1, 2]) {
      const out = join(run.dir, `w${n}`);
      const d = await startDistributedRun({
        natsUrl: nats.url,
        trainingFlags: flags(out),
        workers: Array.from({ length: n }, (_, i) => `w${i}`),
      });
      if ((await d.coordinator.exited()) !== 0) throw new Error(d.coordinator.output());
      await d.stop();
      rows.push([`coordinator + ${n} worker(s)`, median(stepSeconds(join(out, 'metrics.jsonl')))]);
    }
  } finally {
    await nats.stop();
    run.cleanup();
  }
  console.log(
    `\n## Demo training, median step time over ${STEPS} steps (16 examples, cutoff 128, d_model 128)`,
  );
  for (const [name, s] of rows)
    console.log(`${name.padEnd(26)} ${(s * 1000).toFixed(0).padStart(6)} ms/step`);
  const one = rows[1]![1];
  const two = rows[2]![1];
  console.log(
    `speed-up 2 workers vs 1: ${(one / two).toFixed(2)}x, scaling efficiency ${((one / two / 2) * 100).toFixed(0)}%`,
  );
  console.log(`distributed overhead, 1 worker vs finetune: ${((one / rows[0]![1] - 1) * 100).toFixed(0)}%`);
}

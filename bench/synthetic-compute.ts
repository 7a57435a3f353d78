// The synthetic backend's own cost on this host (it must stay far below the GPU time it models, or a
// rehearsal measures the host): per MPT-7B micro-batch, the host time of a gradient with no modelled
// time (--gpu_profile none), the one-off noise table, and how closely a modelled duration is kept
// (wall time over modelled). Also prints the modelled time of one micro-batch on each profile.
import { loadavg } from 'node:os';
import { collate } from '../src/data/micro-batch.ts';
import { trainStepFlops } from '../src/model/flops.ts';
import { GPU_PROFILES, gpuProfile } from '../src/model/gpu-profiles.ts';
import { loadSyntheticCompute, SyntheticCompute } from '../src/worker/synthetic-compute.ts';

const ROWS = 4;
const LEN = 256;
const PROMPT = 128;

const microBatch = (id: number) => {
  const examples = Array.from({ length: ROWS }, () => ({
    inputIds: new Int32Array(LEN).fill(7),
    labels: Int32Array.from({ length: LEN }, (_, t) => (t < PROMPT ? -100 : 7)),
  }));
  return collate(examples, [0, 1, 2, 3], { id, step: 0 });
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function hostCost(label: string, targetModules: string[], r: number): Promise<void> {
  const settings = {
    lora: { r, loraAlpha: 16, loraDropout: 0.05, targetModules },
    seed: 1000 + r,
    gradientCheckpointing: false,
    load8bit: false,
  };
  const loaded = await loadSyntheticCompute('synthetic:mpt-7b', settings, null);
  let t0 = performance.now();
  await loaded.compute.train(microBatch(0));
  const first = performance.now() - t0;
  const times: number[] = [];
  for (let i = 1; i <= 20; i++) {
    t0 = performance.now();
    await loaded.compute.train(microBatch(i));
    times.push(performance.now() - t0);
  }
  console.log(
    `${label}: ${loaded.layout.size} values; first micro-batch (noise table) ${first.toFixed(0)} ms, then median ${median(times).toFixed(1)} ms (${((loaded.layout.size * 4) / 1e6 / (median(times) / 1000)).toFixed(0)} MB/s of gradient)`,
  );
  // Modelled A100-80GB at MFU 0.5: wall / modelled over 5 micro-batches.
  const profile = gpuProfile('a100-80gb');
  const c = new SyntheticCompute(loaded.layout, loaded.flops, settings.seed, profile);
  const ratios: number[] = [];
  for (let i = 21; i <= 25; i++) {
    const mb = microBatch(i);
    t0 = performance.now();
    const out = await c.train(mb);
    const wall = performance.now() - t0;
    const modelled = c.modelledSeconds(
      trainStepFlops(loaded.flops, { rows: ROWS, seqLen: LEN, logitRows: out.tokens }),
    );
    ratios.push(wall / 1000 / modelled);
  }
  console.log(`  modelled a100-80gb: wall / modelled time, median of 5: ${median(ratios).toFixed(4)}`);
}

export async function run(): Promise<void> {
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  await hostCost('MPT-7B r=8 Wqkv', ['Wqkv'], 8);
  await hostCost('MPT-7B r=16 all four Linears', ['Wqkv', 'out_proj', 'up_proj', 'down_proj'], 16);
  const loaded = await loadSyntheticCompute(
    'synthetic:mpt-7b',
    {
      lora: { r: 8, loraAlpha: 16, loraDropout: 0.05, targetModules: ['Wqkv'] },
      seed: 1,
      gradientCheckpointing: false,
      load8bit: false,
    },
    null,
  );
  const flops = trainStepFlops(loaded.flops, { rows: ROWS, seqLen: LEN, logitRows: ROWS * (LEN - PROMPT) });
  console.log(
    `\nMPT-7B r=8 Wqkv, micro-batch ${ROWS} x ${LEN} (${ROWS * (LEN - PROMPT)} supervised): ${(flops / 1e12).toFixed(2)} TFLOP`,
  );
  console.log('profile     peak TFLOP/s (FP32)  modelled s at MFU 0.5');
  for (const name of Object.keys(GPU_PROFILES)) {
    const p = gpuProfile(name);
    const s = flops / (p.peakFlopsPerSecond * p.mfu);
    console.log(
      `${name.padEnd(11)} ${(p.peakFlopsPerSecond / 1e12).toFixed(1).padStart(19)}  ${s.toFixed(2).padStart(21)}`,
    );
  }
}

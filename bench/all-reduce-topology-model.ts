// The all-reduce cost model of docs/scale.md ("All-reduce cost model"), evaluated: bytes per node
// link per step for flat shard-owner and hierarchical, their link-time bounds next to NCCL ring's,
// for MPT-7B r=8 on Wqkv and r=16 on all four Linears at 8-256 GPUs (8 per node) on 25/100/400
// Gbit/s, and the compute time of a step at the seed's batch (128 rows of 256 tokens, micro-batches
// of 4, half the tokens supervised) from src/model/flops.ts on an H100 SXM at MFU 0.5. Arithmetic
// only: nothing is run or timed.
import { openSyntheticModel } from '../src/families/synthetic-model.ts';
import { flopsModelOf, trainStepFlops } from '../src/model/flops.ts';
import { gpuProfile, modelledSeconds } from '../src/model/gpu-profiles.ts';
import { adapterLayout } from '../src/train/adapter-layout.ts';

const PER_NODE = 8;
const GPUS = [8, 16, 32, 64, 128, 256];
const LINKS_GBIT = [25, 100, 400];
const BATCH_ROWS = 128;
const MICRO_ROWS = 4;
const SEQ = 256;

/** Bytes a node's link carries per step in its busier direction (docs/scale.md). */
export function linkBytes(
  kind: 'flat' | 'hierarchical' | 'nccl-ring',
  gpus: number,
  perNode: number,
  G: number,
): number {
  const nodes = gpus / perNode;
  // Flat: each member receives 2(n-1)/n·G from the cluster servers, which run on other machines.
  if (kind === 'flat') return (perNode * 2 * (gpus - 1) * G) / gpus;
  // NCCL's ring over all GPUs, one ring edge in and one out of each node: 2(n-1)/n·G each way.
  if (kind === 'nccl-ring') return nodes <= 1 ? 0 : (2 * (gpus - 1) * G) / gpus;
  // Hierarchical: G out, 2(N-1)/N·G in; nothing leaves a lone node.
  return (2 * (nodes - 1) * G) / nodes;
}

export async function run(): Promise<void> {
  const model = await openSyntheticModel('synthetic:mpt-7b');
  const h100 = gpuProfile('h100-80gb');
  for (const [label, r, targets] of [
    ['r=8 on Wqkv', 8, ['Wqkv']],
    ['r=16 on all four Linears', 16, ['Wqkv', 'out_proj', 'up_proj', 'down_proj']],
  ] as const) {
    const lora = { r, loraAlpha: 2 * r, loraDropout: 0.05, targetModules: [...targets] };
    const { layout, targets: t } = adapterLayout(model.config, lora);
    const G = layout.size * 4;
    const flops = flopsModelOf(model.config, r, t, { dropout: true });
    const mb = trainStepFlops(flops, { rows: MICRO_ROWS, seqLen: SEQ, logitRows: (MICRO_ROWS * SEQ) / 2 });
    const mbSeconds = modelledSeconds(mb, h100);
    console.log(
      `\nMPT-7B ${label}: G = ${(G / 1e6).toFixed(1)} MB; a micro-batch of ${MICRO_ROWS}x${SEQ} is ${(mb / 1e12).toFixed(2)} TFLOP, ${mbSeconds.toFixed(2)} s on ${h100.device} at MFU ${h100.mfu}`,
    );
    console.log(
      '  GPUs | nodes | compute/step s | link GB/step: flat | hierarchical | NCCL ring | link s at 25 / 100 / 400 Gbit/s: flat | hierarchical | NCCL ring',
    );
    for (const gpus of GPUS) {
      const compute = Math.ceil(BATCH_ROWS / MICRO_ROWS / gpus) * mbSeconds;
      const flat = linkBytes('flat', gpus, PER_NODE, G);
      const hier = linkBytes('hierarchical', gpus, PER_NODE, G);
      const ring = linkBytes('nccl-ring', gpus, PER_NODE, G);
      const at = (bytes: number) => LINKS_GBIT.map((g) => ((bytes * 8) / (g * 1e9)).toFixed(3)).join(' / ');
      console.log(
        `  ${String(gpus).padStart(4)} | ${String(gpus / PER_NODE).padStart(5)} | ${compute.toFixed(2).padStart(14)} | ${[flat, hier, ring].map((b) => (b / 1e9).toFixed(3)).join(' | ')} | ${at(flat)} | ${at(hier)} | ${at(ring)}`,
      );
    }
  }
}

// The mid-size MPT of the train-step benchmark (d_model 512, 8 heads, 4 layers, GPT-NeoX vocabulary,
// LoRA r=8 on Wqkv, the first 40% of each row's labels -100), its random weights and batch, and the
// FLOPs of one training step, shared by the benchmark and its per-backend child processes.
//
// FLOPs per step (docs/wasm-performance.md), N = B·T tokens, n_l = supervised rows, L layers:
//   fwd = 2·N·12·L·D² + 2·N·4·r·D·L (LoRA) + 4·B·T²·D·L (QKᵀ, PV) + 2·n_l·V·D
//   bwd = 2·N·(12L−3)·D² + 2·(LoRA fwd) + 2·(attention fwd) + 2·n_l·V·D
// "exec" counts the logits of the n_l rows actually computed; "std" counts all N rows (n_l = N).
import { LORA } from '../../src/checkpoint/lora-variants/index.ts';
import type { HostTensor } from '../../src/formats/host-tensor.ts';
import { trainStepFlops } from '../../src/model/flops.ts';

export interface StepShape {
  readonly d: number;
  readonly h: number;
  readonly l: number;
  readonly v: number;
  /** Sequence length (cutoff) and rows per micro-batch. */
  readonly t: number;
  readonly b: number;
  readonly r: number;
  readonly promptFraction: number;
}

export const MID: StepShape = { d: 512, h: 8, l: 4, v: 50432, t: 256, b: 4, r: 8, promptFraction: 0.4 };

export function rand(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** N(0, std) values (sum of 4 uniforms, rescaled: cheap and close enough for a benchmark). */
export function normal(n: number, std: number, r: () => number): Float32Array {
  const out = new Float32Array(n);
  const k = std * Math.sqrt(3);
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() + r() - 2) * k;
  return out;
}

export function stepFlops(s: StepShape, nl: number): number {
  // The same count the workers' MFU uses (src/model/flops.ts; formula there), r on Wqkv.
  const wqkv = (layer: number) => ({ layer, module: 'Wqkv' as const, inFeatures: s.d, outFeatures: 3 * s.d });
  return trainStepFlops(
    {
      dModel: s.d,
      nLayers: s.l,
      // MPT's block with the 4x FFN: Wqkv 3·D², out_proj D², up_proj and down_proj 4·D² each.
      blockLinearValues: 12 * s.d * s.d,
      inputGroups: [
        { linears: ['Wqkv'], values: 3 * s.d * s.d },
        { linears: ['out_proj'], values: s.d * s.d },
        { linears: ['up_proj'], values: 4 * s.d * s.d },
        { linears: ['down_proj'], values: 4 * s.d * s.d },
      ],
      vocabSize: s.v,
      loraRank: s.r,
      loraTargets: Array.from({ length: s.l }, (_, layer) => wqkv(layer)),
      variantFlops: Array.from({ length: s.l }, (_, layer) => LORA.flopsPerToken(wqkv(layer), false)),
    },
    { rows: s.b, seqLen: s.t, logitRows: nl },
  );
}

export function midModelTensors(s: StepShape): HostTensor[] {
  const { d, l, v } = s;
  const r = rand(1);
  const out: HostTensor[] = [{ name: 'transformer.wte.weight', shape: [v, d], data: normal(v * d, 0.02, r) }];
  out.push({ name: 'transformer.norm_f.weight', shape: [d], data: new Float32Array(d).fill(1) });
  for (let i = 0; i < l; i++) {
    const p = `transformer.blocks.${i}`;
    out.push({ name: `${p}.norm_1.weight`, shape: [d], data: new Float32Array(d).fill(1) });
    out.push({ name: `${p}.norm_2.weight`, shape: [d], data: new Float32Array(d).fill(1) });
    out.push({ name: `${p}.attn.Wqkv.weight`, shape: [3 * d, d], data: normal(3 * d * d, 0.02, r) });
    out.push({ name: `${p}.attn.out_proj.weight`, shape: [d, d], data: normal(d * d, 0.02, r) });
    out.push({ name: `${p}.ffn.up_proj.weight`, shape: [4 * d, d], data: normal(4 * d * d, 0.02, r) });
    out.push({ name: `${p}.ffn.down_proj.weight`, shape: [d, 4 * d], data: normal(4 * d * d, 0.02, r) });
  }
  return out;
}

export function midBatch(s: StepShape) {
  const { b, t, v, promptFraction } = s;
  const r = rand(2);
  const inputIds = Int32Array.from({ length: b * t }, () => Math.floor(r() * v));
  const labels = Int32Array.from(inputIds);
  const prompt = Math.floor(promptFraction * t);
  for (let row = 0; row < b; row++) labels.fill(-100, row * t, row * t + prompt);
  return { rows: b, seqLen: t, inputIds, labels };
}

// Tiny random MPT checkpoints built in the tests: a config from JSON (through the real parser),
// seeded weights with activations of order 1, and micro-batches with padding and masked prompts.
import { type MptConfig, parseMptConfig } from '../../../src/families/mpt/config.ts';
import type { HostTensor } from '../../../src/formats/host-tensor.ts';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

export function tinyConfig(
  json: Record<string, unknown> = {},
  attn: Record<string, unknown> = {},
): MptConfig {
  return parseMptConfig(
    {
      model_type: 'mpt',
      d_model: 24,
      n_heads: 6,
      n_layers: 2,
      expansion_ratio: 4,
      max_seq_len: 32,
      vocab_size: 40,
      ...json,
      attn_config: { alibi: true, alibi_bias_max: 8, ...attn },
    },
    'test config',
  );
}

export function randomWeights(config: MptConfig, seed: number): Map<string, Float32Array> {
  const g = gaussian(rng(seed));
  const d = config.dModel;
  const f = Math.floor(d * config.expansionRatio);
  const out = new Map<string, Float32Array>();
  const put = (name: string, n: number, value: () => number) => {
    out.set(name, Float32Array.from({ length: n }, value));
  };
  put('transformer.wte.weight', config.vocabSize * d, () => 0.5 * g());
  put('transformer.norm_f.weight', d, () => 1 + 0.1 * g());
  for (let i = 0; i < config.nLayers; i++) {
    const p = `transformer.blocks.${i}`;
    put(`${p}.norm_1.weight`, d, () => 1 + 0.1 * g());
    put(`${p}.norm_2.weight`, d, () => 1 + 0.1 * g());
    if (config.attn.qkLn) {
      put(`${p}.attn.q_ln.weight`, d, () => 1 + 0.1 * g());
      put(`${p}.attn.k_ln.weight`, d, () => 1 + 0.1 * g());
    }
    put(`${p}.attn.Wqkv.weight`, 3 * d * d, () => g() / Math.sqrt(d));
    put(`${p}.attn.out_proj.weight`, d * d, () => g() / Math.sqrt(d));
    put(`${p}.ffn.up_proj.weight`, f * d, () => g() / Math.sqrt(d));
    put(`${p}.ffn.down_proj.weight`, d * f, () => g() / Math.sqrt(f));
  }
  return out;
}

export function hostTensors(config: MptConfig, weights: ReadonlyMap<string, Float32Array>): HostTensor[] {
  const d = config.dModel;
  const f = Math.floor(d * config.expansionRatio);
  const shape = (name: string): number[] => {
    if (name.endsWith('wte.weight')) return [config.vocabSize, d];
    if (name.includes('norm') || name.includes('_ln.')) return [d];
    if (name.endsWith('Wqkv.weight')) return [3 * d, d];
    if (name.endsWith('out_proj.weight')) return [d, d];
    if (name.endsWith('up_proj.weight')) return [f, d];
    return [d, f];
  };
  return [...weights].map(([name, data]) => ({ name, shape: shape(name), data }));
}

/** rows x seqLen ids; row 1 right-padded by 3 (mask 0, labels -100); row 2's first 4 labels -100. */
export function randomBatch(config: MptConfig, rows: number, seqLen: number, seed: number) {
  const rand = rng(seed);
  const n = rows * seqLen;
  const inputIds = Int32Array.from({ length: n }, () => 1 + Math.floor(rand() * (config.vocabSize - 1)));
  const attentionMask = new Int32Array(n).fill(1);
  const labels = Int32Array.from(inputIds);
  if (rows > 1) {
    for (let t = seqLen - 3; t < seqLen; t++) {
      inputIds[seqLen + t] = 0;
      attentionMask[seqLen + t] = 0;
      labels[seqLen + t] = -100;
    }
  }
  if (rows > 2) for (let t = 0; t < 4; t++) labels[2 * seqLen + t] = -100;
  return { rows, seqLen, inputIds, labels, attentionMask };
}

/** LoRA weights with non-zero B (so every A gradient is non-zero too). */
export function randomLora(
  targets: readonly { aName: string; bName: string; inFeatures: number; outFeatures: number }[],
  r: number,
  seed: number,
): Map<string, Float32Array> {
  const g = gaussian(rng(seed));
  const out = new Map<string, Float32Array>();
  for (const t of targets) {
    out.set(
      t.aName,
      Float32Array.from({ length: r * t.inFeatures }, () => g() / Math.sqrt(t.inFeatures)),
    );
    out.set(
      t.bName,
      Float32Array.from({ length: t.outFeatures * r }, () => 0.2 * g()),
    );
  }
  return out;
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

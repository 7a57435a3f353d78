// MPT weights in TensorFlow.js, built from a config and the checkpoint's HostTensors (HF state-dict
// names), plus the LoRA adapter of the current step. Frozen weights are plain tensors, never
// variables; the wte table also stays on the host, where embedding rows are gathered.
//
// LoRA API: configureLora(settings) once → the targets (PEFT names and shapes); then before every
// step setLoraWeights(map) with the trainer's current host Float32Arrays (PEFT names, A [r, in],
// B [out, r]); the model copies them to the device and never modifies them.
import * as tf from '@tensorflow/tfjs-core';
import { AttentionBiasCache } from './attention-mask.ts';
import type { ComputeLayout } from './backend.ts';
import type { BlockLora, BlockWeights } from './block.ts';
import type { MptConfig } from './config.ts';
import type { HostTensor } from './host-tensor.ts';
import { transposeHost } from './host-transpose.ts';
import type { LoraFactors } from './linear.ts';
import { denseWeightSource, int8WeightSource, type LinearWeightSource } from './linear-weights.ts';
import {
  type LoraSettings,
  type LoraTarget,
  linearShape,
  loraScaling,
  loraTargets,
  MPT_LINEARS,
  modulePath,
} from './lora.ts';
import type { VocabChunks } from './loss.ts';

export interface LoadOptions {
  readonly layout: ComputeLayout;
  /** Keep Linear weights as int8 with per-output-channel scales (wte and norms stay float32). */
  readonly load8bit?: boolean;
  /** Vocab columns per chunk of the output layer; default from the layout and d_model. */
  readonly vocabChunk?: number;
}

/** Plain-2d: keep K·N·4 bytes of the dh GEMM under ~13 MB, where wasm's GEMM stays fast. */
const CHUNK_BYTES = 13_000_000;

export function defaultVocabChunk(layout: ComputeLayout, vocabSize: number, dModel: number): number {
  if (layout === 'batched') return vocabSize;
  const widest = Math.max(8, Math.floor(CHUNK_BYTES / (4 * dModel)));
  const chunks = Math.ceil(vocabSize / widest);
  return Math.min(vocabSize, Math.ceil(vocabSize / chunks / 8) * 8);
}

export class MptModel {
  private loraSettings: LoraSettings | null = null;
  private targets: readonly LoraTarget[] = [];
  private factors: Map<number, Partial<Record<string, LoraFactors>>> = new Map();

  constructor(
    readonly config: MptConfig,
    readonly layout: ComputeLayout,
    /** [V, D] row-major; embedding and label rows are gathered from it on the host. */
    readonly wte: Float32Array,
    /** [max_seq_len, D] learned positions (only for non-ALiBi checkpoints that ship wpe). */
    readonly wpe: Float32Array | null,
    readonly vocab: VocabChunks,
    readonly blocks: readonly BlockWeights[],
    readonly normF: tf.Tensor1D,
    readonly biasCache: AttentionBiasCache,
  ) {}

  get headDim(): number {
    return this.config.dModel / this.config.nHeads;
  }

  get softmaxScale(): number {
    return this.config.attn.softmaxScale ?? 1 / Math.sqrt(this.headDim);
  }

  get loraTargets(): readonly LoraTarget[] {
    return this.targets;
  }

  get lora(): LoraSettings | null {
    return this.loraSettings;
  }

  /** True once setLoraWeights has uploaded the adapter of the current configuration. */
  get hasLoraWeights(): boolean {
    return this.factors.size > 0;
  }

  /** Chooses the LoRA modules (PEFT matching) and drops any previous adapter. */
  configureLora(settings: LoraSettings): readonly LoraTarget[] {
    const targets = loraTargets(this.config, settings);
    this.disposeFactors();
    this.loraSettings = settings;
    this.targets = targets;
    return targets;
  }

  /** Uploads the current A and B of every target (PEFT saved names); replaces the previous ones. */
  setLoraWeights(weights: ReadonlyMap<string, Float32Array>): void {
    const s = this.loraSettings;
    if (s === null) throw new Error('setLoraWeights: call configureLora first');
    const scale = loraScaling(s);
    const next = new Map<number, Partial<Record<string, LoraFactors>>>();
    for (const t of this.targets) {
      const a = weights.get(t.aName);
      const b = weights.get(t.bName);
      if (a === undefined || b === undefined) {
        throw new Error(`LoRA weights: missing ${a === undefined ? t.aName : t.bName}`);
      }
      if (a.length !== s.r * t.inFeatures || b.length !== t.outFeatures * s.r) {
        throw new Error(
          `LoRA weights: ${t.aName} must have ${s.r}x${t.inFeatures} and ${t.bName} ${t.outFeatures}x${s.r} values`,
        );
      }
      const layer = next.get(t.layer) ?? {};
      layer[t.module] = {
        a: tf.tensor2d(a, [s.r, t.inFeatures]),
        at: tf.tensor2d(transposeHost(a, s.r, t.inFeatures), [t.inFeatures, s.r]),
        b: tf.tensor2d(b, [t.outFeatures, s.r]),
        bt: tf.tensor2d(transposeHost(b, t.outFeatures, s.r), [s.r, t.outFeatures]),
        scale,
      };
      next.set(t.layer, layer);
    }
    this.disposeFactors();
    this.factors = next;
  }

  /** This step's LoRA factors of one block (empty without an adapter). Owned by the model. */
  blockLora(layer: number): BlockLora {
    return (this.factors.get(layer) ?? {}) as BlockLora;
  }

  /** x [rows·T, D] = wte[ids] (+ wpe[t]). The caller owns the tensor. */
  embed(ids: Int32Array, seqLen: number): tf.Tensor2D {
    const d = this.config.dModel;
    const out = new Float32Array(ids.length * d);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      out.set(this.wte.subarray(id * d, (id + 1) * d), i * d);
      if (this.wpe !== null) {
        const pos = (i % seqLen) * d;
        for (let j = 0; j < d; j++)
          out[i * d + j] = (out[i * d + j] as number) + (this.wpe[pos + j] as number);
      }
    }
    return tf.tensor2d(out, [ids.length, d]);
  }

  /** wte rows of `labels` as [n, D] (the caller owns it). */
  labelRows(labels: Int32Array): tf.Tensor2D {
    const d = this.config.dModel;
    const out = new Float32Array(labels.length * d);
    for (let i = 0; i < labels.length; i++) {
      const id = labels[i] as number;
      out.set(this.wte.subarray(id * d, (id + 1) * d), i * d);
    }
    return tf.tensor2d(out, [labels.length, d]);
  }

  private disposeFactors(): void {
    for (const layer of this.factors.values()) {
      for (const f of Object.values(layer)) if (f !== undefined) tf.dispose([f.a, f.at, f.b, f.bt]);
    }
    this.factors = new Map();
  }

  dispose(): void {
    this.disposeFactors();
    for (const b of this.blocks) {
      tf.dispose([b.norm1, b.norm2]);
      if (b.qLn !== null) b.qLn.dispose();
      if (b.kLn !== null) b.kLn.dispose();
      for (const m of MPT_LINEARS) b.linears[m].dispose();
    }
    tf.dispose([...this.vocab.w, ...(this.vocab.wt ?? []), this.normF]);
    this.biasCache.dispose();
  }
}

function vocabChunks(
  layout: ComputeLayout,
  wte: Float32Array,
  v: number,
  d: number,
  kc: number,
): VocabChunks {
  const w: tf.Tensor2D[] = [];
  const wt: tf.Tensor2D[] = [];
  for (let c0 = 0; c0 < v; c0 += kc) {
    const rows = Math.min(kc, v - c0);
    const part = wte.subarray(c0 * d, (c0 + rows) * d);
    w.push(tf.tensor2d(part, [rows, d]));
    if (layout === 'plain-2d') wt.push(tf.tensor2d(transposeHost(part, rows, d), [d, rows]));
  }
  return { w, wt: layout === 'plain-2d' ? wt : null };
}

/** Reads every tensor of `tensors` (HF names, float32 host data) into an MptModel. Throws on a
 * missing, unexpected or wrongly shaped tensor, naming it. */
export async function loadMptModel(
  config: MptConfig,
  tensors: AsyncIterable<HostTensor> | Iterable<HostTensor>,
  options: LoadOptions,
): Promise<MptModel> {
  if (config.attn.attnType !== 'multihead_attention') {
    throw new Error(
      `attn_type ${config.attn.attnType} is not supported (only multihead_attention, as in MPT-7B)`,
    );
  }
  if (!config.tieWordEmbeddings)
    throw new Error('tie_word_embeddings false is not supported (MPT ties them)');
  const { dModel: d, vocabSize: v, nLayers } = config;
  const expected = new Map<string, readonly number[]>();
  expected.set('transformer.wte.weight', [v, d]);
  expected.set('transformer.norm_f.weight', [d]);
  for (let i = 0; i < nLayers; i++) {
    expected.set(`transformer.blocks.${i}.norm_1.weight`, [d]);
    expected.set(`transformer.blocks.${i}.norm_2.weight`, [d]);
    if (config.attn.qkLn) {
      expected.set(`transformer.blocks.${i}.attn.q_ln.weight`, [d]);
      expected.set(`transformer.blocks.${i}.attn.k_ln.weight`, [d]);
    }
    for (const m of MPT_LINEARS) {
      const { inF, outF } = linearShape(config, m);
      expected.set(`${modulePath(i, m)}.weight`, [outF, inF]);
    }
  }
  const got = new Map<string, Float32Array>();
  for await (const t of tensors) {
    if (t.name === 'lm_head.weight') continue; // tied to wte; HF may save a copy
    const want = t.name === 'transformer.wpe.weight' ? [config.maxSeqLen, d] : expected.get(t.name);
    if (want === undefined)
      throw new Error(`checkpoint tensor ${t.name} is not part of an MPT model with this config`);
    if (want.length !== t.shape.length || want.some((x, i) => x !== t.shape[i])) {
      throw new Error(`checkpoint tensor ${t.name} has shape [${t.shape}], expected [${want}]`);
    }
    got.set(t.name, t.data);
  }
  const missing = [...expected.keys()].filter((k) => !got.has(k));
  if (missing.length > 0)
    throw new Error(`checkpoint lacks ${missing.length} tensors, e.g. ${missing.slice(0, 3).join(', ')}`);
  const take = (name: string) => got.get(name) as Float32Array;
  const { layout } = options;
  const source = (name: string, outF: number, inF: number): LinearWeightSource =>
    options.load8bit
      ? int8WeightSource(layout, take(name), outF, inF)
      : denseWeightSource(layout, take(name), outF, inF);
  const blocks: BlockWeights[] = [];
  for (let i = 0; i < nLayers; i++) {
    const p = `transformer.blocks.${i}`;
    const linears = Object.fromEntries(
      MPT_LINEARS.map((m) => {
        const { inF, outF } = linearShape(config, m);
        return [m, source(`${modulePath(i, m)}.weight`, outF, inF)];
      }),
    ) as Record<(typeof MPT_LINEARS)[number], LinearWeightSource>;
    blocks.push({
      norm1: tf.tensor1d(take(`${p}.norm_1.weight`)),
      norm2: tf.tensor1d(take(`${p}.norm_2.weight`)),
      qLn: config.attn.qkLn ? tf.tensor1d(take(`${p}.attn.q_ln.weight`)) : null,
      kLn: config.attn.qkLn ? tf.tensor1d(take(`${p}.attn.k_ln.weight`)) : null,
      linears,
    });
  }
  const wte = take('transformer.wte.weight');
  const kc = options.vocabChunk ?? defaultVocabChunk(layout, v, d);
  const wpe = config.attn.alibi ? null : (got.get('transformer.wpe.weight') ?? null);
  return new MptModel(
    config,
    layout,
    wte,
    wpe,
    vocabChunks(layout, wte, v, d, kc),
    blocks,
    tf.tensor1d(take('transformer.norm_f.weight')),
    new AttentionBiasCache(layout, config.nHeads, config.attn.alibi, config.attn.alibiBiasMax),
  );
}

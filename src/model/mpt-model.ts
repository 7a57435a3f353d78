// MPT weights in TensorFlow.js, built from a config and the checkpoint's HostTensors (HF state-dict
// names), plus the LoRA adapter of the current step. Frozen weights are plain tensors, never
// variables; the wte table also stays on the host, where embedding rows are gathered.
//
// LoRA API: configureLora(settings) once → the targets (PEFT names and shapes); then before every
// step setLoraWeights(map) with the trainer's current host Float32Arrays (PEFT names, A [r, in],
// B [out, r]; and the run's LoRA variant's own tensors, e.g. DoRA's magnitudes [out]); the model
// copies them to the device and never modifies them. The variant prepares its per-step state there
// (DoRA's row norms ‖W + s·B·A‖, src/checkpoint/lora-variants/dora.ts).
import * as tf from '@tensorflow/tfjs-core';
import type { MptConfig } from '../checkpoint/config.ts';
import {
  type LoraSettings,
  type LoraTarget,
  linearShape,
  loraScaling,
  loraTargets,
  MPT_LINEARS,
  type MptLinearName,
  modulePath,
} from '../checkpoint/lora-targets.ts';
import { loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import type { HostTensor } from '../formats/host-tensor.ts';
import { AttentionBiasCache } from './attention-mask.ts';
import type { ComputeLayout } from './backend.ts';
import type { BlockLora, BlockWeights } from './block.ts';
import { transposeHost } from './host-transpose.ts';
import { frozenRows, type LoraFactors } from './linear.ts';
import { denseWeightSource, int8WeightSource, type LinearWeightSource } from './linear-weights.ts';
import type { VocabChunks } from './loss.ts';
import { defaultVocabChunk, vocabChunks } from './vocab-chunks.ts';

export interface LoadOptions {
  readonly layout: ComputeLayout;
  /** Keep Linear weights as int8 with per-output-channel scales (wte and norms stay float32). */
  readonly load8bit?: boolean;
  /** Vocab columns per chunk of the output layer; default from the layout and d_model. */
  readonly vocabChunk?: number;
  /** Called after each weight tensor is taken in (a 7B checkpoint loads for minutes: progress). */
  readonly onTensor?: (loaded: number, expected: number) => void;
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
    const variant = loraVariantOf(s);
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
      const extras = variant.extraTensors(t).map((spec) => {
        const v = weights.get(spec.name);
        const size = spec.shape.reduce((n, x) => n * x, 1);
        if (v === undefined)
          throw new Error(`LoRA weights: missing ${spec.name}, which ${variant.name} trains`);
        if (v.length !== size) throw new Error(`LoRA weights: ${spec.name} must have ${size} values`);
        return v;
      });
      const layer = next.get(t.layer) ?? {};
      const pair = {
        a: tf.tensor2d(a, [s.r, t.inFeatures]),
        at: tf.tensor2d(transposeHost(a, s.r, t.inFeatures), [t.inFeatures, s.r]),
        b: tf.tensor2d(b, [t.outFeatures, s.r]),
        bt: tf.tensor2d(transposeHost(b, t.outFeatures, s.r), [s.r, t.outFeatures]),
        scale,
      };
      layer[t.module] = variant.prepare(
        tf,
        pair,
        extras,
        frozenRows(this.blocks[t.layer]!.linears[t.module]),
      );
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
      for (const f of Object.values(layer)) {
        f?.dispose();
      }
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

/** Streams `tensors` (HF names, float32 host data) into an MptModel: each tensor is uploaded (or
 * quantized) as it arrives, so the host never holds more than one float32 weight besides wte. Throws
 * on a missing, unexpected or wrongly shaped tensor, naming it; frees what it made on failure. */
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
  const { layout } = options;
  const expected = expectedTensors(config);
  const norms = new Map<string, tf.Tensor1D>();
  const linears = new Map<string, LinearWeightSource>();
  let wte: Float32Array | null = null;
  let wpe: Float32Array | null = null;
  const seen = new Set<string>();
  try {
    for await (const t of tensors) {
      if (t.name === 'lm_head.weight') continue; // tied to wte; HF may save a copy
      if (t.name.endsWith('.bias')) {
        throw new Error(
          `checkpoint tensor ${t.name}: biases are not supported (MPT checkpoints have no_bias: true)`,
        );
      }
      const want = t.name === 'transformer.wpe.weight' ? [config.maxSeqLen, d] : expected.get(t.name);
      if (want === undefined)
        throw new Error(`checkpoint tensor ${t.name} is not part of an MPT model with this config`);
      if (want.length !== t.shape.length || want.some((x, i) => x !== t.shape[i])) {
        throw new Error(`checkpoint tensor ${t.name} has shape [${t.shape}], expected [${want}]`);
      }
      if (seen.has(t.name)) throw new Error(`checkpoint tensor ${t.name} appears twice`);
      seen.add(t.name);
      if (t.name === 'transformer.wte.weight') wte = t.data;
      else if (t.name === 'transformer.wpe.weight') wpe = t.data;
      else if (want.length === 1) norms.set(t.name, tf.tensor1d(t.data));
      else {
        const [outF, inF] = want as [number, number];
        const make = options.load8bit ? int8WeightSource : denseWeightSource;
        linears.set(t.name, make(layout, t.data, outF, inF));
      }
      // (wpe, which few checkpoints have, is not among the expected tensors)
      options.onTensor?.(Math.min(seen.size, expected.size), expected.size);
    }
    const missing = [...expected.keys()].filter((k) => !seen.has(k));
    if (missing.length > 0) {
      throw new Error(`checkpoint lacks ${missing.length} tensors, e.g. ${missing.slice(0, 3).join(', ')}`);
    }
  } catch (err) {
    for (const n of norms.values()) n.dispose();
    for (const l of linears.values()) l.dispose();
    throw err;
  }
  const norm = (name: string) => norms.get(name) as tf.Tensor1D;
  const blocks: BlockWeights[] = [];
  for (let i = 0; i < nLayers; i++) {
    const p = `transformer.blocks.${i}`;
    blocks.push({
      norm1: norm(`${p}.norm_1.weight`),
      norm2: norm(`${p}.norm_2.weight`),
      qLn: config.attn.qkLn ? norm(`${p}.attn.q_ln.weight`) : null,
      kLn: config.attn.qkLn ? norm(`${p}.attn.k_ln.weight`) : null,
      linears: Object.fromEntries(
        MPT_LINEARS.map((m) => [m, linears.get(`${modulePath(i, m)}.weight`) as LinearWeightSource]),
      ) as Record<MptLinearName, LinearWeightSource>,
    });
  }
  const table = wte as unknown as Float32Array;
  const kc = options.vocabChunk ?? defaultVocabChunk(layout, v, d);
  return new MptModel(
    config,
    layout,
    table,
    config.attn.alibi ? null : wpe,
    vocabChunks(layout, table, v, d, kc),
    blocks,
    norm('transformer.norm_f.weight'),
    new AttentionBiasCache(layout, config.nHeads, config.attn.alibi, config.attn.alibiBiasMax),
  );
}

/** Every tensor name the checkpoint must hold, with its shape. */
function expectedTensors(config: MptConfig): Map<string, readonly number[]> {
  const d = config.dModel;
  const expected = new Map<string, readonly number[]>();
  expected.set('transformer.wte.weight', [config.vocabSize, d]);
  expected.set('transformer.norm_f.weight', [d]);
  for (let i = 0; i < config.nLayers; i++) {
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
  return expected;
}

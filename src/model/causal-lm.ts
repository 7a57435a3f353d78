// The seam between the generic model code (forward, train step, KV-cached decoding, generation) and a
// model family's math (src/families/<name>): a causal LM is an embedding, a stack of blocks, a final
// norm and the output layer. The generic code drives the loop; the family computes one block (with an
// optional KV cache), its backward, and the norm. Nothing here names a family.
import type * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../checkpoint/architecture.ts';
import type { LoraSettings } from '../checkpoint/lora-spec.ts';
import type { LoraTarget } from '../checkpoint/lora-targets.ts';
import type { HostTensor } from '../formats/host-tensor.ts';
import type { ComputeLayout } from './backend.ts';
import type { KvCache } from './kv-cache.ts';
import type { LinearGrads } from './linear.ts';
import type { VocabChunks } from './loss.ts';

/** Tensors kept from a forward for its backward, or per-forward state; the owner calls dispose(). */
export interface Releasable {
  dispose(): void;
}

/** Scaled dropout keep masks of one block's LoRA inputs, by Linear name (absent = no dropout). */
export type BlockKeep = Readonly<Partial<Record<string, tf.Tensor2D>>>;

/** The LoRA gradients of one Linear of a block. */
export interface ModuleGrads extends LinearGrads {
  readonly module: string;
}

/** The rows of one forward: `rows` sequences of `seqLen` new positions each. */
export interface ForwardRows {
  readonly rows: number;
  readonly seqLen: number;
  /** [rows, seqLen] 1 = real token, 0 = padding; null = all real. */
  readonly attentionMask: Int32Array | null;
}

export interface LoadOptions {
  readonly layout: ComputeLayout;
  /** Keep Linear weights as int8 with per-output-channel scales (embeddings and norms stay float32). */
  readonly load8bit?: boolean;
  /** Vocab columns per chunk of the output layer; default from the layout and d_model. */
  readonly vocabChunk?: number;
  /** Called after each weight tensor is taken in (a 7B checkpoint loads for minutes: progress). */
  readonly onTensor?: (loaded: number, expected: number) => void;
}

/** A family's loader: streams `tensors` (HF names, float32 host data) into its model. */
export type LoadModel = (
  config: ModelConfig,
  tensors: AsyncIterable<HostTensor> | Iterable<HostTensor>,
  options: LoadOptions,
) => Promise<CausalLm>;

export interface CausalLm {
  readonly config: ModelConfig;
  readonly layout: ComputeLayout;
  /** The output layer's weight in vocab chunks (src/model/vocab-chunks.ts). */
  readonly vocab: VocabChunks;

  /** The LoRA settings of configureLora (null before). */
  readonly lora: LoraSettings | null;
  readonly loraTargets: readonly LoraTarget[];
  /** True once setLoraWeights has uploaded the adapter of the current configuration. */
  readonly hasLoraWeights: boolean;
  /** Chooses the LoRA modules (PEFT matching) and drops any previous adapter. */
  configureLora(settings: LoraSettings): readonly LoraTarget[];
  /** Uploads A and B (and DoRA's magnitudes) of every target under PEFT names; replaces the old ones. */
  setLoraWeights(weights: ReadonlyMap<string, Float32Array>): void;

  /** Throws, naming the config field, when the frozen model cannot be trained as configured. */
  assertTrainable(): void;
  /** x [ids.length, D]: embeddings of `ids`, `perRow` per sequence, the first at `firstPosition`. */
  embed(ids: Int32Array, perRow: number, firstPosition: number): tf.Tensor2D;
  /** The output layer's rows of `labels` as [n, D] (for the fused cross-entropy). */
  labelRows(labels: Int32Array): tf.Tensor2D;

  /** The state every block of one forward shares (masks, biases). With `cache`, the new positions
   * follow the cached ones and each block appends its keys and values. The caller disposes it. */
  beginForward(rows: ForwardRows, cache: KvCache | null): Releasable;
  /** y = block `layer`(x); `saved` (null unless `save`) is what blockBackward needs. The caller owns
   * y and saved; x is not disposed. */
  blockForward(
    pass: Releasable,
    layer: number,
    keep: BlockKeep,
    x: tf.Tensor2D,
    save: boolean,
  ): { readonly y: tf.Tensor2D; readonly saved: Releasable | null };
  /** The LoRA gradients of block `layer` and, when `needDx`, dx; the caller owns them. */
  blockBackward(
    pass: Releasable,
    layer: number,
    keep: BlockKeep,
    dy: tf.Tensor2D,
    saved: Releasable,
    needDx: boolean,
  ): { readonly dx: tf.Tensor2D | null; readonly grads: ModuleGrads[] };
  /** The final norm; `saved` (null unless `save`) feeds finalNormBackward. The caller owns both. */
  finalNorm(x: tf.Tensor2D, save: boolean): { readonly y: tf.Tensor2D; readonly saved: Releasable | null };
  finalNormBackward(dy: tf.Tensor2D, saved: Releasable): tf.Tensor2D;
  /** An empty KV cache shaped for this model. The caller disposes it. */
  newKvCache(): KvCache;

  dispose(): void;
}

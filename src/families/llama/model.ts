// Llama in TensorFlow.js as a CausalLm (src/model/causal-lm.ts): frozen weights (embed_tokens on the
// host, where rows are gathered; lm_head, or embed_tokens when tied, in vocab chunks), the LoRA adapter
// of the current step, and per forward the causal + padding mask (or the cache's causal bias) and the
// RoPE tables of its positions, shared by every layer.
import * as tf from '@tensorflow/tfjs-core';
import type { LoraSettings } from '../../checkpoint/lora-spec.ts';
import type { LoraTarget } from '../../checkpoint/lora-targets.ts';
import { type AttentionBiasCache, AttentionMask } from '../../model/attention-mask.ts';
import type { ComputeLayout } from '../../model/backend.ts';
import { cachedAttentionBias } from '../../model/cached-attention.ts';
import type { BlockKeep, CausalLm, ForwardRows, Releasable } from '../../model/causal-lm.ts';
import { KvCache } from '../../model/kv-cache.ts';
import { LoraState } from '../../model/lora-state.ts';
import type { VocabChunks } from '../../model/loss.ts';
import { LLAMA_LINEARS, llamaLinear } from './architecture.ts';
import {
  type BlockEnv,
  type BlockSaved,
  type BlockWeights,
  blockBackward,
  blockForward,
  disposeBlockSaved,
} from './block.ts';
import type { LlamaConfig } from './config.ts';
import { disposeRmsNormSaved, type RmsNormSaved, rmsNormBackward, rmsNormForward } from './ops.ts';
import { inverseFrequencies, ropeTensors } from './rope.ts';

class LlamaPass implements Releasable {
  constructor(
    readonly env: BlockEnv,
    readonly cache: KvCache | null,
    readonly bias: tf.Tensor4D | null,
  ) {}

  dispose(): void {
    this.env.mask?.dispose();
    this.bias?.dispose();
    tf.dispose([this.env.rope.cos, this.env.rope.sin]);
  }
}

class SavedBlock implements Releasable {
  constructor(readonly state: BlockSaved) {}
  dispose(): void {
    disposeBlockSaved(this.state);
  }
}

class SavedNorm implements Releasable {
  constructor(readonly state: RmsNormSaved) {}
  dispose(): void {
    disposeRmsNormSaved(this.state);
  }
}

function own<T>(x: Releasable, kind: new (...a: never[]) => T, what: string): T {
  if (!(x instanceof kind)) throw new Error(`Llama model: ${what} was not made by this model`);
  return x;
}

export class LlamaModel implements CausalLm {
  private readonly adapter: LoraState;
  private readonly invFreq: Float32Array;

  constructor(
    readonly config: LlamaConfig,
    readonly layout: ComputeLayout,
    /** embed_tokens [V, D] row-major. */
    readonly embedTokens: Float32Array,
    /** lm_head [V, D] row-major (the same array as embedTokens when tied). */
    readonly lmHead: Float32Array,
    readonly vocab: VocabChunks,
    readonly blocks: readonly BlockWeights[],
    readonly normF: tf.Tensor1D,
    readonly biasCache: AttentionBiasCache,
  ) {
    this.adapter = new LoraState(config, (layer, m) => this.blocks[layer]!.linears[llamaLinear(m)]);
    this.invFreq = inverseFrequencies(config.rope, config.headDim);
  }

  get loraTargets(): readonly LoraTarget[] {
    return this.adapter.targets;
  }

  get lora(): LoraSettings | null {
    return this.adapter.settings;
  }

  get hasLoraWeights(): boolean {
    return this.adapter.hasWeights;
  }

  configureLora(settings: LoraSettings): readonly LoraTarget[] {
    return this.adapter.configure(settings);
  }

  setLoraWeights(weights: ReadonlyMap<string, Float32Array>): void {
    this.adapter.setWeights(weights);
  }

  assertTrainable(): void {
    const p = this.config.attentionDropout;
    // Dropout in the frozen attention would change the training loss; Llama checkpoints ship 0.
    if (p > 0)
      throw new Error(
        `config attention_dropout = ${p}: dropout in the frozen model is not supported (set it to 0)`,
      );
  }

  /** x [n, D] = embed_tokens[ids]; positions enter through RoPE. Caller owns it. */
  embed(ids: Int32Array, _perRow: number, _firstPosition: number): tf.Tensor2D {
    return this.rows(this.embedTokens, ids);
  }

  labelRows(labels: Int32Array): tf.Tensor2D {
    return this.rows(this.lmHead, labels);
  }

  private rows(table: Float32Array, ids: Int32Array): tf.Tensor2D {
    const d = this.config.dModel;
    const v = this.config.vocabSize;
    const out = new Float32Array(ids.length * d);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (!(Number.isInteger(id) && id >= 0 && id < v))
        throw new Error(`token id ${id} is outside [0, ${v})`);
      out.set(table.subarray(id * d, (id + 1) * d), i * d);
    }
    return tf.tensor2d(out, [ids.length, d]);
  }

  beginForward(r: ForwardRows, cache: KvCache | null): Releasable {
    const c = this.config;
    const position = cache?.length ?? 0;
    const tk = position + r.seqLen;
    if (c.slidingWindow !== null && tk > c.slidingWindow) {
      throw new Error(
        `config sliding_window = ${c.slidingWindow}: a forward over ${tk} positions would need the window, which is not implemented (keep --cutoff_len and generation within ${c.slidingWindow})`,
      );
    }
    const attn = {
      rows: r.rows,
      seqLen: r.seqLen,
      nHeads: c.nHeads,
      headDim: c.headDim,
      scale: 1 / Math.sqrt(c.headDim),
    };
    const env = (mask: AttentionMask | null): BlockEnv => ({
      layout: this.layout,
      attn,
      nKvHeads: c.nKvHeads,
      mask,
      eps: c.rmsNormEps,
      rope: ropeTensors(this.invFreq, position, r.seqLen),
    });
    if (position === 0) {
      return new LlamaPass(
        env(new AttentionMask(this.biasCache, r.rows, r.seqLen, r.attentionMask)),
        cache,
        null,
      );
    }
    // New positions after cached ones: causal among the new ones, every cached key visible.
    const bias = tf.tensor4d(cachedAttentionBias(null, c.nHeads, r.seqLen, tk), [1, c.nHeads, r.seqLen, tk]);
    return new LlamaPass(env(null), cache, bias);
  }

  blockForward(pass: Releasable, layer: number, keep: BlockKeep, x: tf.Tensor2D, save: boolean) {
    const p = own(pass, LlamaPass, 'the forward pass');
    const cache = p.cache === null ? null : { kv: p.cache, layer, bias: p.bias };
    const out = blockForward(p.env, this.blocks[layer]!, this.adapter.block(layer), keep, x, save, cache);
    return { y: out.y, saved: out.saved === null ? null : new SavedBlock(out.saved) };
  }

  readonly blockBackward: CausalLm['blockBackward'] = (pass, layer, keep, dy, saved, needDx) => {
    const p = own(pass, LlamaPass, 'the forward pass');
    const s = own(saved, SavedBlock, 'the saved block state').state;
    return blockBackward(p.env, this.blocks[layer]!, this.adapter.block(layer), keep, dy, s, needDx);
  };

  finalNorm(x: tf.Tensor2D, save: boolean) {
    const { y, saved } = rmsNormForward(x, this.normF, this.config.rmsNormEps);
    if (save) return { y, saved: new SavedNorm(saved) };
    disposeRmsNormSaved(saved);
    return { y, saved: null };
  }

  finalNormBackward(dy: tf.Tensor2D, saved: Releasable): tf.Tensor2D {
    return rmsNormBackward(dy, this.normF, own(saved, SavedNorm, 'the saved norm state').state);
  }

  /** The cache holds each key/value head once (GQA: nHeads/nKvHeads times less than repeated). */
  newKvCache(): KvCache {
    return new KvCache(this.config.nLayers, this.config.nKvHeads);
  }

  dispose(): void {
    this.adapter.dispose();
    for (const b of this.blocks) {
      tf.dispose([b.norm1, b.norm2, ...Object.values(b.biases)]);
      for (const m of LLAMA_LINEARS) b.linears[m].dispose();
    }
    tf.dispose([...this.vocab.w, ...(this.vocab.wt ?? []), this.normF]);
    this.biasCache.dispose();
  }
}

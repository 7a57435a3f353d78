// MPT in TensorFlow.js as a CausalLm (src/model/causal-lm.ts): the frozen weights (plain tensors,
// never variables; wte stays on the host, where embedding rows are gathered), the LoRA adapter of the
// current step (src/model/lora-state.ts), and the per-forward state its blocks share: the ALiBi +
// causal + padding mask, or with a KV cache the bias of the new positions against the cached ones.
import * as tf from '@tensorflow/tfjs-core';
import type { LoraSettings } from '../../checkpoint/lora-spec.ts';
import type { LoraTarget } from '../../checkpoint/lora-targets.ts';
import { alibiSlopes } from '../../model/alibi.ts';
import { type AttentionBiasCache, AttentionMask } from '../../model/attention-mask.ts';
import type { ComputeLayout } from '../../model/backend.ts';
import { cachedAttentionBias } from '../../model/cached-attention.ts';
import type { BlockKeep, CausalLm, ForwardRows, Releasable } from '../../model/causal-lm.ts';
import { KvCache } from '../../model/kv-cache.ts';
import { type LayerNormSaved, layerNormBackward, layerNormForward } from '../../model/layer-norm.ts';
import { LoraState } from '../../model/lora-state.ts';
import type { VocabChunks } from '../../model/loss.ts';
import { MPT_LINEARS, mptLinear } from './architecture.ts';
import {
  type BlockEnv,
  type BlockSaved,
  type BlockWeights,
  blockBackward,
  blockForward,
  disposeBlockSaved,
} from './block.ts';
import type { MptConfig } from './config.ts';

/** What one forward's blocks share; the KV cache when decoding. */
class MptPass implements Releasable {
  constructor(
    readonly env: BlockEnv,
    readonly cache: KvCache | null,
    readonly bias: tf.Tensor4D | null,
  ) {}

  dispose(): void {
    this.env.mask?.dispose();
    this.bias?.dispose();
  }
}

class SavedBlock implements Releasable {
  constructor(readonly state: BlockSaved) {}
  dispose(): void {
    disposeBlockSaved(this.state);
  }
}

class SavedNorm implements Releasable {
  constructor(readonly state: LayerNormSaved) {}
  dispose(): void {
    tf.dispose([this.state.xhat, this.state.rstd]);
  }
}

function own<T>(x: Releasable, kind: new (...a: never[]) => T, what: string): T {
  if (!(x instanceof kind)) throw new Error(`MPT model: ${what} was not made by this model`);
  return x;
}

export class MptModel implements CausalLm {
  private readonly adapter: LoraState;

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
  ) {
    this.adapter = new LoraState(config, (layer, m) => this.blocks[layer]!.linears[mptLinear(m)]);
  }

  get headDim(): number {
    return this.config.dModel / this.config.nHeads;
  }

  get softmaxScale(): number {
    return this.config.attn.softmaxScale ?? 1 / Math.sqrt(this.headDim);
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
    const c = this.config;
    const pdrop = { attn_pdrop: c.attn.attnPdrop, resid_pdrop: c.residPdrop, emb_pdrop: c.embPdrop };
    for (const [field, p] of Object.entries(pdrop)) {
      // Base-model dropout would change the training loss; MPT checkpoints ship 0 for all three.
      if (p > 0)
        throw new Error(`config ${field} = ${p}: dropout in the frozen model is not supported (set it to 0)`);
    }
  }

  /** x [n, D] = wte[ids] (+ wpe[position] for checkpoints with learned positions). Caller owns it. */
  embed(ids: Int32Array, perRow: number, firstPosition: number): tf.Tensor2D {
    const d = this.config.dModel;
    const v = this.config.vocabSize;
    const out = new Float32Array(ids.length * d);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (!(Number.isInteger(id) && id >= 0 && id < v))
        throw new Error(`token id ${id} is outside [0, ${v})`);
      out.set(this.wte.subarray(id * d, (id + 1) * d), i * d);
      if (this.wpe !== null) {
        const pos = (firstPosition + (i % perRow)) * d;
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

  beginForward(r: ForwardRows, cache: KvCache | null): Releasable {
    const c = this.config;
    const attn = {
      rows: r.rows,
      seqLen: r.seqLen,
      nHeads: c.nHeads,
      headDim: this.headDim,
      scale: this.softmaxScale,
    };
    const env = (mask: AttentionMask | null): BlockEnv => ({
      layout: this.layout,
      attn,
      mask,
      eps: c.normEps,
      clipQkv: c.attn.clipQkv,
    });
    const position = cache?.length ?? 0;
    if (position === 0) {
      return new MptPass(
        env(new AttentionMask(this.biasCache, r.rows, r.seqLen, r.attentionMask)),
        cache,
        null,
      );
    }
    // New positions after cached ones: ALiBi relative to the last key, causal among the new ones.
    const slopes = c.attn.alibi ? alibiSlopes(c.nHeads, c.attn.alibiBiasMax) : null;
    const tk = position + r.seqLen;
    const bias = tf.tensor4d(cachedAttentionBias(slopes, c.nHeads, r.seqLen, tk), [
      1,
      c.nHeads,
      r.seqLen,
      tk,
    ]);
    return new MptPass(env(null), cache, bias);
  }

  blockForward(pass: Releasable, layer: number, keep: BlockKeep, x: tf.Tensor2D, save: boolean) {
    const p = own(pass, MptPass, 'the forward pass');
    const cache = p.cache === null ? null : { kv: p.cache, layer, bias: p.bias };
    const out = blockForward(p.env, this.blocks[layer]!, this.adapter.block(layer), keep, x, save, cache);
    return { y: out.y, saved: out.saved === null ? null : new SavedBlock(out.saved) };
  }

  readonly blockBackward: CausalLm['blockBackward'] = (pass, layer, keep, dy, saved, needDx) => {
    const p = own(pass, MptPass, 'the forward pass');
    const s = own(saved, SavedBlock, 'the saved block state').state;
    return blockBackward(p.env, this.blocks[layer]!, this.adapter.block(layer), keep, dy, s, needDx);
  };

  finalNorm(x: tf.Tensor2D, save: boolean) {
    const { y, saved } = layerNormForward(x, this.normF, this.config.normEps);
    if (save) return { y, saved: new SavedNorm(saved) };
    tf.dispose([saved.xhat, saved.rstd]);
    return { y, saved: null };
  }

  finalNormBackward(dy: tf.Tensor2D, saved: Releasable): tf.Tensor2D {
    return layerNormBackward(dy, this.normF, own(saved, SavedNorm, 'the saved norm state').state);
  }

  newKvCache(): KvCache {
    return new KvCache(this.config.nLayers, this.config.nHeads);
  }

  dispose(): void {
    this.adapter.dispose();
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

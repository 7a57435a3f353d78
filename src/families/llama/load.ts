// Loads a Llama checkpoint's tensors (HF state-dict names, float32 host data) into a LlamaModel, each
// uploaded (or quantized, load_8bit) as it arrives; embed_tokens and lm_head stay on the host.
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../../formats/host-tensor.ts';
import { AttentionBiasCache } from '../../model/attention-mask.ts';
import type { LoadOptions } from '../../model/causal-lm.ts';
import { denseWeightSource, int8WeightSource, type LinearWeightSource } from '../../model/linear-weights.ts';
import { defaultVocabChunk, vocabChunks } from '../../model/vocab-chunks.ts';
import { hasBias, LLAMA_LINEARS, type LlamaLinearName, modulePath } from './architecture.ts';
import type { BlockWeights } from './block.ts';
import type { LlamaConfig } from './config.ts';
import { LlamaModel } from './model.ts';

const EMBED = 'model.embed_tokens.weight';
const LM_HEAD = 'lm_head.weight';

/** Throws on a missing, unexpected or wrongly shaped tensor, naming it; frees what it made on failure. */
export async function loadLlamaModel(
  config: LlamaConfig,
  tensors: AsyncIterable<HostTensor> | Iterable<HostTensor>,
  options: LoadOptions,
): Promise<LlamaModel> {
  const { dModel: d, vocabSize: v, nLayers } = config;
  const { layout } = options;
  const expected = config.arch.weightShapes();
  const vectors = new Map<string, tf.Tensor1D>();
  const linears = new Map<string, LinearWeightSource>();
  const host = new Map<string, Float32Array>();
  const seen = new Set<string>();
  try {
    for await (const t of tensors) {
      // Tied: lm_head is embed_tokens, and a saved copy of it is ignored as transformers does.
      if (t.name === LM_HEAD && config.tieWordEmbeddings) continue;
      // Older checkpoints store RoPE's inverse frequencies; they are recomputed from the config.
      if (t.name.endsWith('.rotary_emb.inv_freq')) continue;
      const want = expected.get(t.name);
      if (want === undefined)
        throw new Error(`checkpoint tensor ${t.name} is not part of a Llama model with this config`);
      if (want.length !== t.shape.length || want.some((x, i) => x !== t.shape[i])) {
        throw new Error(`checkpoint tensor ${t.name} has shape [${t.shape}], expected [${want}]`);
      }
      if (seen.has(t.name)) throw new Error(`checkpoint tensor ${t.name} appears twice`);
      seen.add(t.name);
      if (t.name === EMBED || t.name === LM_HEAD) host.set(t.name, t.data);
      else if (want.length === 1) vectors.set(t.name, tf.tensor1d(t.data));
      else {
        const [outF, inF] = want as [number, number];
        const make = options.load8bit ? int8WeightSource : denseWeightSource;
        linears.set(t.name, make(layout, t.data, outF, inF));
      }
      options.onTensor?.(seen.size, expected.size);
    }
    const missing = [...expected.keys()].filter((k) => !seen.has(k));
    if (missing.length > 0) {
      throw new Error(`checkpoint lacks ${missing.length} tensors, e.g. ${missing.slice(0, 3).join(', ')}`);
    }
  } catch (err) {
    for (const n of vectors.values()) n.dispose();
    for (const l of linears.values()) l.dispose();
    throw err;
  }
  const vector = (name: string) => vectors.get(name) as tf.Tensor1D;
  const blocks: BlockWeights[] = [];
  for (let i = 0; i < nLayers; i++) {
    const p = `model.layers.${i}`;
    const biases: Partial<Record<LlamaLinearName, tf.Tensor1D>> = {};
    for (const m of LLAMA_LINEARS) if (hasBias(config, m)) biases[m] = vector(`${modulePath(i, m)}.bias`);
    blocks.push({
      norm1: vector(`${p}.input_layernorm.weight`),
      norm2: vector(`${p}.post_attention_layernorm.weight`),
      linears: Object.fromEntries(
        LLAMA_LINEARS.map((m) => [m, linears.get(`${modulePath(i, m)}.weight`) as LinearWeightSource]),
      ) as Record<LlamaLinearName, LinearWeightSource>,
      biases,
    });
  }
  const embed = host.get(EMBED) as Float32Array;
  const head = config.tieWordEmbeddings ? embed : (host.get(LM_HEAD) as Float32Array);
  const kc = options.vocabChunk ?? defaultVocabChunk(layout, v, d);
  return new LlamaModel(
    config,
    layout,
    embed,
    head,
    vocabChunks(layout, head, v, d, kc),
    blocks,
    vector('model.norm.weight'),
    new AttentionBiasCache(layout, config.nHeads, false, 8),
  );
}

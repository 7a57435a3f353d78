// Loads an MPT checkpoint's tensors (HF state-dict names, float32 host data) into an MptModel: each
// tensor is uploaded (or quantized) as it arrives, so the host never holds more than one float32
// weight besides wte.
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../../formats/host-tensor.ts';
import { AttentionBiasCache } from '../../model/attention-mask.ts';
import type { LoadOptions } from '../../model/causal-lm.ts';
import { denseWeightSource, int8WeightSource, type LinearWeightSource } from '../../model/linear-weights.ts';
import { defaultVocabChunk, vocabChunks } from '../../model/vocab-chunks.ts';
import { MPT_LINEARS, type MptLinearName, modulePath } from './architecture.ts';
import type { BlockWeights } from './block.ts';
import type { MptConfig } from './config.ts';
import { MptModel } from './model.ts';

/** Throws on a missing, unexpected or wrongly shaped tensor, naming it; frees what it made on failure. */
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
  const expected = config.arch.weightShapes();
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

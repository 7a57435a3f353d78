// Llama's config.json (transformers' LlamaConfig: Llama 2 and 3, TinyLlama, Mistral-shaped models
// saved as model_type "llama") as a typed, validated object with transformers' defaults where absent.
// RoPE is read from transformers 5's `rope_parameters` or the Hub files' `rope_theta` + `rope_scaling`.
// What would make a different model than LlamaForCausalLM computes here is refused by its field name.
import type { ModelConfig } from '../../checkpoint/architecture.ts';
import { ConfigError, FieldReader, isJsonObject } from '../../checkpoint/config-fields.ts';
import { llamaArchitecture } from './architecture.ts';

/** Llama 3's frequency-dependent RoPE scaling (rope_type "llama3"). */
export interface Llama3Scaling {
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxPositionEmbeddings: number;
}

export interface LlamaRope {
  readonly theta: number;
  /** null: the default rope_type (no scaling). */
  readonly llama3: Llama3Scaling | null;
}

export interface LlamaConfig extends ModelConfig {
  readonly modelType: 'llama';
  readonly intermediateSize: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly rope: LlamaRope;
  readonly tieWordEmbeddings: boolean;
  /** Biases on q_proj, k_proj, v_proj and o_proj. */
  readonly attentionBias: boolean;
  /** Biases on gate_proj, up_proj and down_proj. */
  readonly mlpBias: boolean;
  readonly attentionDropout: number;
  /** Mistral-style local attention: a query sees at most this many keys; null = all. A forward longer
   * than it is refused (src/families/llama/model.ts), so only windows beyond the cutoff train. */
  readonly slidingWindow: number | null;
}

/** RoPE types of transformers this family computes; every other one is refused by name. */
const ROPE_TYPES = ['default', 'llama3'] as const;

function parseRope(r: FieldReader, maxPos: number): LlamaRope {
  // transformers 5 writes rope_parameters (rope_theta inside); Hub files carry rope_theta and an
  // optional rope_scaling (older ones spell its rope_type "type").
  const nested = r.has('rope_parameters');
  const field = nested ? 'rope_parameters' : 'rope_scaling';
  const p = r.obj[field];
  if (p !== undefined && p !== null && !isJsonObject(p)) r.fail(field, 'an object or null');
  const params = new FieldReader(isJsonObject(p) ? p : {}, `${r.where} ${field}`);
  const theta = nested ? params.num('rope_theta', 10000) : r.num('rope_theta', 10000);
  if (!(theta > 0)) (nested ? params : r).fail('rope_theta', 'a positive number');
  const typeKey = params.has('rope_type') ? 'rope_type' : 'type';
  const type = params.str(typeKey, 'default');
  if (!(ROPE_TYPES as readonly string[]).includes(type)) {
    throw new ConfigError(
      `${r.where}: ${field}.${typeKey} "${type}" is not supported (only ${ROPE_TYPES.join(' and ')}); lora-mpt refuses it rather than compute a different model`,
    );
  }
  const partial = params.num('partial_rotary_factor', 1);
  if (partial !== 1) params.fail('partial_rotary_factor', '1 (RoPE over the whole head)');
  if (type === 'default') return { theta, llama3: null };
  const llama3 = {
    factor: params.num('factor', Number.NaN),
    lowFreqFactor: params.num('low_freq_factor', Number.NaN),
    highFreqFactor: params.num('high_freq_factor', Number.NaN),
    originalMaxPositionEmbeddings: params.int('original_max_position_embeddings', maxPos, 1),
  };
  if (!(llama3.factor > 0)) params.fail('factor', 'a positive number (rope_type llama3)');
  if (!(llama3.lowFreqFactor > 0)) params.fail('low_freq_factor', 'a positive number (rope_type llama3)');
  if (!(llama3.highFreqFactor > llama3.lowFreqFactor))
    params.fail('high_freq_factor', 'a number above low_freq_factor (rope_type llama3)');
  return { theta, llama3 };
}

/** Fields that change the model at other values, and the one value computed here. */
function refuseUnsupported(r: FieldReader): void {
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu') r.fail('hidden_act', '"silu" (the SwiGLU MLP of Llama)');
  const tp = r.int('pretraining_tp', 1, 1);
  // pretraining_tp > 1 splits the matmuls into slices in transformers; the sum is the same math,
  // but its float rounding is not, so it is refused rather than approximated.
  if (tp !== 1) r.fail('pretraining_tp', '1');
  for (const f of ['layer_types', 'use_sliding_window', 'qk_norm']) {
    const v = r.obj[f];
    if (v !== undefined && v !== null && v !== false)
      throw new ConfigError(`${r.where}: "${f}" ${JSON.stringify(v)} is not part of a Llama model; refused`);
  }
}

export function parseLlamaConfig(json: unknown, source: string): LlamaConfig {
  if (!isJsonObject(json)) throw new ConfigError(`${source}: expected a JSON object at the top level`);
  const r = new FieldReader(json, source);
  if (r.str('model_type', 'llama') !== 'llama') r.fail('model_type', '"llama"');
  refuseUnsupported(r);
  const dModel = r.int('hidden_size', 4096, 1);
  const nHeads = r.int('num_attention_heads', 32, 1);
  const nKvHeads = r.int('num_key_value_heads', nHeads, 1);
  if (nHeads % nKvHeads !== 0) r.fail('num_key_value_heads', `a divisor of num_attention_heads (${nHeads})`);
  const headDefault = Math.floor(dModel / nHeads);
  const headDim = r.obj.head_dim === null ? headDefault : r.int('head_dim', headDefault, 1);
  if (headDim % 2 !== 0) r.fail('head_dim', 'an even number (RoPE rotates pairs)');
  const rmsNormEps = r.num('rms_norm_eps', 1e-6);
  if (!(rmsNormEps > 0)) r.fail('rms_norm_eps', 'a positive number');
  const maxSeqLen = r.int('max_position_embeddings', 2048, 1);
  const slidingWindow = r.numOrNull('sliding_window');
  if (slidingWindow !== null && !(Number.isInteger(slidingWindow) && slidingWindow >= 1))
    r.fail('sliding_window', 'a positive integer or null');
  const eos = r.obj.eos_token_id;
  if (Array.isArray(eos) && !eos.every((x) => Number.isInteger(x)))
    r.fail('eos_token_id', 'an id or a list of ids');
  // Llama 3 instruct lists several eos ids; generation stops on the first, as for MPT.
  const eosTokenId = Array.isArray(eos)
    ? ((eos[0] as number | undefined) ?? null)
    : r.numOrNull('eos_token_id');
  const config: Omit<LlamaConfig, 'arch'> = {
    modelType: 'llama',
    dModel,
    nHeads,
    nKvHeads,
    headDim,
    nLayers: r.int('num_hidden_layers', 32, 1),
    intermediateSize: r.int('intermediate_size', 11008, 1),
    maxSeqLen,
    vocabSize: r.int('vocab_size', 32000, 1),
    rmsNormEps,
    rope: parseRope(r, maxSeqLen),
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    attentionBias: r.bool('attention_bias', false),
    mlpBias: r.bool('mlp_bias', false),
    attentionDropout: r.probability('attention_dropout', 0),
    slidingWindow,
    logitScale: null,
    torchDtype: r.strOrNull('torch_dtype') ?? r.strOrNull('dtype'),
    tokenizerName: null,
    bosTokenId: r.numOrNull('bos_token_id'),
    eosTokenId,
    padTokenId: r.numOrNull('pad_token_id'),
    raw: json,
  };
  return { ...config, arch: llamaArchitecture(config) };
}

/** True for a config parsed by parseLlamaConfig. */
export function isLlamaConfig(c: ModelConfig): c is LlamaConfig {
  return c.modelType === 'llama' && 'rope' in c && 'nKvHeads' in c;
}

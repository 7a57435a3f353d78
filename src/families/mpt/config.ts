// MPT's config.json as a typed, validated object: every field MPT checkpoints ship (HF native
// `MptConfig` and the llm-foundry remote-code `MPTConfig`), camelCased, with HF's defaults where absent.
import type { ModelConfig } from '../../checkpoint/architecture.ts';
import { ConfigError, FieldReader, isJsonObject } from '../../checkpoint/config-fields.ts';
import { mptArchitecture } from './architecture.ts';

export type AttnType = 'multihead_attention' | 'multiquery_attention' | 'grouped_query_attention';

export interface MptAttnConfig {
  readonly attnType: AttnType;
  /** 'torch' | 'flash' | 'triton': how PyTorch computed it; the math is the same. */
  readonly attnImpl: string;
  readonly attnPdrop: number;
  readonly alibi: boolean;
  readonly alibiBiasMax: number;
  /** Clamp of the whole Wqkv output to [-clipQkv, clipQkv]; null = no clamp. */
  readonly clipQkv: number | null;
  readonly qkLn: boolean;
  /** Score scale; null means 1/sqrt(headDim). */
  readonly softmaxScale: number | null;
  readonly attnUsesSequenceId: boolean;
  readonly prefixLm: boolean;
  /** Key/value heads for grouped-query attention (llm-foundry); nHeads for multihead, 1 for multiquery. */
  readonly kvNHeads: number;
}

export interface MptInitConfig {
  readonly name: string;
  readonly fanMode: string;
  readonly initNonlinearity: string;
  readonly initDivIsResidual: boolean | number | string;
  readonly initStd: number | null;
  readonly initGain: number;
  readonly embInitStd: number | null;
  readonly embInitUniformLim: number | readonly number[] | null;
}

export interface MptConfig extends ModelConfig {
  readonly modelType: 'mpt';
  /** FFN width is floor(dModel * expansionRatio) (llm-foundry; HF native always uses 4). */
  readonly expansionRatio: number;
  readonly residPdrop: number;
  readonly embPdrop: number;
  readonly learnedPosEmb: boolean;
  readonly noBias: boolean;
  readonly normType: string;
  /** `layer_norm_epsilon` (HF) or `norm_eps` (llm-foundry), default 1e-5. */
  readonly normEps: number;
  readonly embeddingFraction: number;
  /** 'inv_sqrt_d_model' resolved to 1/sqrt(dModel). */
  readonly logitScale: number | null;
  readonly tieWordEmbeddings: boolean;
  readonly useCache: boolean;
  readonly initDevice: string;
  readonly initializerRange: number;
  readonly attn: MptAttnConfig;
  readonly initConfig: MptInitConfig;
  /** llm-foundry `ffn_config.ffn_type` ('mptmlp' when absent). */
  readonly ffnType: string;
}

function parseAttn(r: FieldReader, nHeads: number): MptAttnConfig {
  const attnType = r.oneOf<AttnType>(
    'attn_type',
    ['multihead_attention', 'multiquery_attention', 'grouped_query_attention'],
    'multihead_attention',
  );
  const kvDefault = attnType === 'multihead_attention' ? nHeads : 1;
  const kvNHeads = attnType === 'grouped_query_attention' ? r.int('kv_n_heads', 1, 1) : kvDefault;
  if (nHeads % kvNHeads !== 0) r.fail('kv_n_heads', `a divisor of n_heads (${nHeads})`);
  const clipQkv = r.numOrNull('clip_qkv');
  if (clipQkv !== null && clipQkv <= 0) r.fail('clip_qkv', 'a positive number or null');
  const softmaxScale = r.numOrNull('softmax_scale');
  if (softmaxScale !== null && softmaxScale <= 0) r.fail('softmax_scale', 'a positive number or null');
  const alibiBiasMax = r.num('alibi_bias_max', 8);
  if (alibiBiasMax <= 0) r.fail('alibi_bias_max', 'a positive number');
  return {
    attnType,
    attnImpl: r.str('attn_impl', 'torch'),
    attnPdrop: r.probability('attn_pdrop', 0),
    alibi: r.bool('alibi', true),
    alibiBiasMax,
    clipQkv,
    qkLn: r.bool('qk_ln', false),
    softmaxScale,
    attnUsesSequenceId: r.bool('attn_uses_sequence_id', false),
    prefixLm: r.bool('prefix_lm', false),
    kvNHeads,
  };
}

function parseInit(r: FieldReader): MptInitConfig {
  const div = r.obj.init_div_is_residual ?? true;
  if (typeof div !== 'boolean' && typeof div !== 'number' && typeof div !== 'string') {
    r.fail('init_div_is_residual', 'a boolean, number or string');
  }
  const lim = r.obj.emb_init_uniform_lim ?? null;
  const limOk =
    lim === null ||
    typeof lim === 'number' ||
    (Array.isArray(lim) && lim.length === 2 && lim.every((x) => typeof x === 'number'));
  if (!limOk) r.fail('emb_init_uniform_lim', 'a number, a [low, high] pair or null');
  return {
    name: r.str('name', 'kaiming_normal_'),
    fanMode: r.str('fan_mode', 'fan_in'),
    initNonlinearity: r.str('init_nonlinearity', 'relu'),
    initDivIsResidual: div as boolean | number | string,
    initStd: r.numOrNull('init_std', 0.02),
    initGain: r.num('init_gain', 0),
    embInitStd: r.numOrNull('emb_init_std'),
    embInitUniformLim: lim as number | readonly number[] | null,
  };
}

function parseLogitScale(r: FieldReader, dModel: number): number | null {
  const v = r.obj.logit_scale;
  if (v === undefined || v === null) return null;
  if (v === 'inv_sqrt_d_model') return 1 / Math.sqrt(dModel);
  if (typeof v !== 'number' || !Number.isFinite(v))
    r.fail('logit_scale', `a number, "inv_sqrt_d_model" or null`);
  return v;
}

/**
 * Parses and validates an MPT config.json. `source` names the file in error messages.
 * Throws ConfigError naming the field for a wrong type or an inconsistent value.
 */
export function parseMptConfig(json: unknown, source: string): MptConfig {
  if (!isJsonObject(json)) throw new ConfigError(`${source}: expected a JSON object at the top level`);
  const r = new FieldReader(json, source);
  const modelType = r.str('model_type', 'mpt');
  if (modelType !== 'mpt') r.fail('model_type', '"mpt" (this loader reads MPT checkpoints only)');
  const dModel = r.int('d_model', 2048, 1);
  const nHeads = r.int('n_heads', 16, 1);
  if (dModel % nHeads !== 0) {
    throw new ConfigError(`${source}: "d_model" (${dModel}) must be divisible by "n_heads" (${nHeads})`);
  }
  const expansionRatio = r.num('expansion_ratio', 4);
  if (expansionRatio <= 0) r.fail('expansion_ratio', 'a positive number');
  const embeddingFraction = r.num('embedding_fraction', 1);
  if (!(embeddingFraction > 0 && embeddingFraction <= 1)) r.fail('embedding_fraction', 'in (0, 1]');
  // llm-foundry writes norm_eps, HF writes layer_norm_epsilon; both mean the LayerNorm epsilon.
  const normEps = r.has('norm_eps') ? r.num('norm_eps', 1e-5) : r.num('layer_norm_epsilon', 1e-5);
  if (normEps <= 0) r.fail(r.has('norm_eps') ? 'norm_eps' : 'layer_norm_epsilon', 'a positive number');
  const eos = r.obj.eos_token_id;
  // HF allows a list of eos ids; generation stops on the first, which is all this project needs.
  if (Array.isArray(eos) && !eos.every((x) => Number.isInteger(x)))
    r.fail('eos_token_id', 'an id or a list of ids');
  const eosTokenId = Array.isArray(eos)
    ? ((eos[0] as number | undefined) ?? null)
    : r.numOrNull('eos_token_id');
  const config: Omit<MptConfig, 'arch'> = {
    modelType: 'mpt',
    dModel,
    nHeads,
    nLayers: r.int('n_layers', 24, 1),
    expansionRatio,
    maxSeqLen: r.int('max_seq_len', 2048, 1),
    vocabSize: r.int('vocab_size', 50368, 1),
    residPdrop: r.probability('resid_pdrop', 0),
    embPdrop: r.probability('emb_pdrop', 0),
    learnedPosEmb: r.bool('learned_pos_emb', true),
    noBias: r.bool('no_bias', true),
    normType: r.str('norm_type', 'low_precision_layernorm'),
    normEps,
    embeddingFraction,
    logitScale: parseLogitScale(r, dModel),
    tieWordEmbeddings: r.bool('tie_word_embeddings', true),
    useCache: r.bool('use_cache', false),
    initDevice: r.str('init_device', 'cpu'),
    initializerRange: r.num('initializer_range', 0.02),
    attn: parseAttn(r.child('attn_config'), nHeads),
    initConfig: parseInit(r.child('init_config')),
    ffnType: r.child('ffn_config').str('ffn_type', 'mptmlp'),
    torchDtype: r.strOrNull('torch_dtype') ?? r.strOrNull('dtype'),
    tokenizerName: r.strOrNull('tokenizer_name'),
    bosTokenId: r.numOrNull('bos_token_id'),
    eosTokenId,
    padTokenId: r.numOrNull('pad_token_id'),
    raw: json,
  };
  return { ...config, arch: mptArchitecture(config) };
}

/** True for a config parsed by parseMptConfig (the family's compute part checks what it is given). */
export function isMptConfig(c: ModelConfig): c is MptConfig {
  return c.modelType === 'mpt' && 'attn' in c && 'expansionRatio' in c;
}

// Writes a randomly initialised Llama checkpoint (config.json + model.safetensors) in the Hugging Face
// layout: Linear and embedding weights N(0, initStd) as LlamaForCausalLM's init, RMSNorm weights 1;
// seeded, so reproducible. config.json is in the Hub files' spelling (rope_theta, rope_scaling).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../../data/rng.ts';
import type { HostTensor } from '../../formats/host-tensor.ts';
import { PyFloat, type PyJson, pyJsonDumps } from '../../formats/py-json.ts';
import { writeSafetensors } from '../../formats/safetensors.ts';
import { normals } from '../random-normals.ts';
import type { RandomCheckpointSizes } from '../types.ts';
import { hasBias, LLAMA_LINEARS, linearShape, modulePath } from './architecture.ts';
import { parseLlamaConfig } from './config.ts';

export interface RandomLlamaSpec extends RandomCheckpointSizes {
  /** Key/value heads (grouped-query attention); default nHeads. */
  readonly nKvHeads?: number;
  /** MLP width; default 4·dModel below 256 (tiny tests), else Llama 2's 8/3·dModel rounded up to 256. */
  readonly intermediateSize?: number;
  readonly tieWordEmbeddings?: boolean;
  readonly ropeTheta?: number;
  /** Llama 3's rope_scaling (rope_type llama3); absent: the default RoPE. */
  readonly llama3Scaling?: {
    readonly factor: number;
    readonly lowFreqFactor: number;
    readonly highFreqFactor: number;
    readonly originalMaxPositionEmbeddings: number;
  };
  readonly rmsNormEps?: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
}

function defaultIntermediate(d: number): number {
  if (d < 256) return 4 * d;
  return Math.ceil((8 * d) / 3 / 256) * 256;
}

/** config.json as the Hub's Llama files spell it. */
export function llamaConfigJson(s: RandomLlamaSpec): Record<string, unknown> {
  const scaling = s.llama3Scaling;
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: s.dModel,
    intermediate_size: s.intermediateSize ?? defaultIntermediate(s.dModel),
    num_hidden_layers: s.nLayers,
    num_attention_heads: s.nHeads,
    num_key_value_heads: s.nKvHeads ?? s.nHeads,
    head_dim: s.dModel / s.nHeads,
    hidden_act: 'silu',
    max_position_embeddings: s.maxSeqLen,
    vocab_size: s.vocabSize,
    rms_norm_eps: s.rmsNormEps ?? 1e-5,
    rope_theta: s.ropeTheta ?? 10000,
    rope_scaling:
      scaling === undefined
        ? null
        : {
            rope_type: 'llama3',
            factor: scaling.factor,
            low_freq_factor: scaling.lowFreqFactor,
            high_freq_factor: scaling.highFreqFactor,
            original_max_position_embeddings: scaling.originalMaxPositionEmbeddings,
          },
    attention_bias: false,
    attention_dropout: 0,
    mlp_bias: false,
    pretraining_tp: 1,
    tie_word_embeddings: s.tieWordEmbeddings ?? false,
    bos_token_id: s.bosTokenId ?? 1,
    eos_token_id: s.eosTokenId ?? 2,
    initializer_range: s.initStd ?? 0.02,
    use_cache: true,
    torch_dtype: 'float32',
  };
}

/** Fields LlamaConfig types as float stay floats in the text ("10000.0"), as transformers writes them. */
function configJsonText(json: Record<string, unknown>): string {
  const floats = ['rms_norm_eps', 'rope_theta', 'attention_dropout', 'initializer_range'];
  const top = Object.fromEntries(
    Object.entries(json).map(([k, v]) => [
      k,
      floats.includes(k) && typeof v === 'number' ? new PyFloat(v) : v,
    ]),
  );
  return `${pyJsonDumps(top as PyJson)}\n`;
}

export async function writeRandomLlama(dir: string, spec: RandomLlamaSpec): Promise<void> {
  const json = llamaConfigJson(spec);
  const config = parseLlamaConfig(json, join(dir, 'config.json'));
  const rng = new Rng(spec.seed ?? 0, 0x6c6c6d);
  const std = spec.initStd ?? 0.02;
  const d = config.dModel;
  const v = config.vocabSize;
  const ones = (name: string): HostTensor => ({ name, shape: [d], data: new Float32Array(d).fill(1) });
  const tensors: HostTensor[] = [
    { name: 'model.embed_tokens.weight', shape: [v, d], data: normals(rng, v * d, std) },
    ones('model.norm.weight'),
  ];
  for (let l = 0; l < config.nLayers; l++) {
    tensors.push(ones(`model.layers.${l}.input_layernorm.weight`));
    tensors.push(ones(`model.layers.${l}.post_attention_layernorm.weight`));
    for (const m of LLAMA_LINEARS) {
      const { inF, outF } = linearShape(config, m);
      tensors.push({
        name: `${modulePath(l, m)}.weight`,
        shape: [outF, inF],
        data: normals(rng, outF * inF, std),
      });
      if (hasBias(config, m))
        tensors.push({ name: `${modulePath(l, m)}.bias`, shape: [outF], data: new Float32Array(outF) });
    }
  }
  if (!config.tieWordEmbeddings)
    tensors.push({ name: 'lm_head.weight', shape: [v, d], data: normals(rng, v * d, std) });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), configJsonText(json));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
}

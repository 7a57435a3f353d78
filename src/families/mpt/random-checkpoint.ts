// Writes a randomly initialised MPT checkpoint (config.json + model.safetensors) in the Hugging Face
// layout: the demo's small base model and the test suite's tiny ones. Linear and embedding weights
// are N(0, initStd) and LayerNorm weights 1, as MPT's pre-training init; seeded, so reproducible.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../../data/rng.ts';
import type { HostTensor } from '../../formats/host-tensor.ts';
import { PyFloat, type PyJson, pyJsonDumps } from '../../formats/py-json.ts';
import { writeSafetensors } from '../../formats/safetensors.ts';
import { normals } from '../random-normals.ts';
import type { RandomCheckpointSizes } from '../types.ts';
import { linearShape, MPT_LINEARS, modulePath } from './architecture.ts';
import { parseMptConfig } from './config.ts';

export interface RandomMptSpec extends RandomCheckpointSizes {
  readonly expansionRatio?: number;
}

/** The config.json MPT checkpoints ship (HF `MptConfig` field names, `attn_config` nested). */
export function mptConfigJson(s: RandomMptSpec): Record<string, unknown> {
  return {
    architectures: ['MptForCausalLM'],
    model_type: 'mpt',
    d_model: s.dModel,
    n_heads: s.nHeads,
    n_layers: s.nLayers,
    expansion_ratio: s.expansionRatio ?? 4,
    max_seq_len: s.maxSeqLen,
    vocab_size: s.vocabSize,
    no_bias: true,
    norm_type: 'low_precision_layernorm',
    layer_norm_epsilon: 1e-5,
    emb_pdrop: 0,
    resid_pdrop: 0,
    embedding_fraction: 1.0,
    learned_pos_emb: true,
    logit_scale: null,
    use_cache: false,
    tokenizer_name: 'EleutherAI/gpt-neox-20b',
    torch_dtype: 'float32',
    attn_config: {
      alibi: true,
      alibi_bias_max: 8,
      attn_impl: 'torch',
      attn_pdrop: 0,
      attn_type: 'multihead_attention',
      attn_uses_sequence_id: false,
      clip_qkv: null,
      prefix_lm: false,
      qk_ln: false,
      softmax_scale: null,
    },
  };
}

/**
 * config.json as transformers writes it: fields MptConfig types as float stay floats ("0.0", "1.0"),
 * since transformers 5 refuses an int there (StrictDataclassFieldValidationError on embedding_fraction).
 */
function configJsonText(json: Record<string, unknown>): string {
  const floats = (o: Record<string, unknown>, keys: readonly string[]) =>
    Object.fromEntries(
      Object.entries(o).map(([k, v]) => [k, keys.includes(k) && typeof v === 'number' ? new PyFloat(v) : v]),
    );
  const attn = json.attn_config as Record<string, unknown>; // MptAttentionConfig types attn_pdrop as int
  const top = floats(json, ['resid_pdrop', 'emb_pdrop', 'embedding_fraction', 'layer_norm_epsilon']);
  return `${pyJsonDumps({ ...top, attn_config: attn } as PyJson)}\n`;
}

export async function writeRandomMpt(dir: string, spec: RandomMptSpec): Promise<void> {
  const json = mptConfigJson(spec);
  const config = parseMptConfig(json, join(dir, 'config.json'));
  const rng = new Rng(spec.seed ?? 0, 0x6d7074);
  const std = spec.initStd ?? 0.02;
  const d = config.dModel;
  const tensors: HostTensor[] = [
    {
      name: 'transformer.wte.weight',
      shape: [config.vocabSize, d],
      data: normals(rng, config.vocabSize * d, std),
    },
    { name: 'transformer.norm_f.weight', shape: [d], data: new Float32Array(d).fill(1) },
  ];
  for (let l = 0; l < config.nLayers; l++) {
    for (const norm of ['norm_1', 'norm_2']) {
      tensors.push({
        name: `transformer.blocks.${l}.${norm}.weight`,
        shape: [d],
        data: new Float32Array(d).fill(1),
      });
    }
    for (const m of MPT_LINEARS) {
      const { inF, outF } = linearShape(config, m);
      tensors.push({
        name: `${modulePath(l, m)}.weight`,
        shape: [outF, inF],
        data: normals(rng, outF * inF, std),
      });
    }
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), configJsonText(json));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
}

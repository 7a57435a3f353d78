// Llama's architecture as data: the seven Linears of a decoder layer under PEFT's names, their module
// paths (model.layers.<i>.self_attn.q_proj, model.layers.<i>.mlp.gate_proj) and shapes, every weight
// name of a checkpoint, and what one block keeps for its backward (src/families/llama/block.ts).
import type { Architecture, LinearSpec } from '../../checkpoint/architecture.ts';
import type { LlamaConfig } from './config.ts';

export type LlamaLinearName =
  | 'q_proj'
  | 'k_proj'
  | 'v_proj'
  | 'o_proj'
  | 'gate_proj'
  | 'up_proj'
  | 'down_proj';
/** A block's Linears in forward order. */
export const LLAMA_LINEARS: readonly LlamaLinearName[] = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
];
/** PEFT's default LoRA targets for model_type "llama", and the list its blocks are numbered in. */
export const LLAMA_PEFT_TARGETS: readonly string[] = ['q_proj', 'v_proj'];
export const LLAMA_LAYERS_PATTERN = 'layers';

type Sizes = Omit<LlamaConfig, 'arch'>;

const ATTENTION: ReadonlySet<string> = new Set(['q_proj', 'k_proj', 'v_proj', 'o_proj']);

export function modulePath(layer: number, module: LlamaLinearName): string {
  return `model.layers.${layer}.${ATTENTION.has(module) ? 'self_attn' : 'mlp'}.${module}`;
}

export function linearShape(c: Sizes, module: LlamaLinearName): { inF: number; outF: number } {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const f = c.intermediateSize;
  const d = c.dModel;
  const shapes: Record<LlamaLinearName, { inF: number; outF: number }> = {
    q_proj: { inF: d, outF: q },
    k_proj: { inF: d, outF: kv },
    v_proj: { inF: d, outF: kv },
    o_proj: { inF: q, outF: d },
    gate_proj: { inF: d, outF: f },
    up_proj: { inF: d, outF: f },
    down_proj: { inF: f, outF: d },
  };
  return shapes[module];
}

const isLlamaLinear = (name: string): name is LlamaLinearName =>
  (LLAMA_LINEARS as readonly string[]).includes(name);

/** `name` as one of Llama's Linears; throws naming it and the seven. */
export function llamaLinear(name: string): LlamaLinearName {
  if (!isLlamaLinear(name))
    throw new Error(`Llama has no Linear "${name}"; it has ${LLAMA_LINEARS.join(', ')}`);
  return name;
}

/** True where the Linear carries a bias in this config (attention_bias / mlp_bias). */
export function hasBias(c: Sizes, module: LlamaLinearName): boolean {
  return ATTENTION.has(module) ? c.attentionBias : c.mlpBias;
}

/** Every tensor name a Llama checkpoint must hold, with its shape. */
function weightShapes(c: Sizes): Map<string, readonly number[]> {
  const d = c.dModel;
  const out = new Map<string, readonly number[]>();
  out.set('model.embed_tokens.weight', [c.vocabSize, d]);
  out.set('model.norm.weight', [d]);
  if (!c.tieWordEmbeddings) out.set('lm_head.weight', [c.vocabSize, d]);
  for (let i = 0; i < c.nLayers; i++) {
    out.set(`model.layers.${i}.input_layernorm.weight`, [d]);
    out.set(`model.layers.${i}.post_attention_layernorm.weight`, [d]);
    for (const m of LLAMA_LINEARS) {
      const { inF, outF } = linearShape(c, m);
      out.set(`${modulePath(i, m)}.weight`, [outF, inF]);
      if (hasBias(c, m)) out.set(`${modulePath(i, m)}.bias`, [outF]);
    }
  }
  return out;
}

export function llamaArchitecture(c: Sizes): Architecture {
  const d = c.dModel;
  const f = c.intermediateSize;
  const q = c.nHeads * c.headDim;
  const linears: LinearSpec[] = LLAMA_LINEARS.map((name) => {
    const { inF, outF } = linearShape(c, name);
    return { name, inFeatures: inF, outFeatures: outF };
  });
  const scores = (rows: number, t: number) => rows * c.nHeads * t * t;
  const biasValues = c.nLayers * LLAMA_LINEARS.filter((m) => hasBias(c, m)).length;
  return {
    displayName: 'Llama',
    peftDefaultTargets: LLAMA_PEFT_TARGETS,
    layersPattern: LLAMA_LAYERS_PATTERN,
    linears,
    // As block.ts's GROUP and ORDER: Linears that share an input share its gradient.
    inputGroups: [['q_proj', 'k_proj', 'v_proj'], ['o_proj'], ['gate_proj', 'up_proj'], ['down_proj']],
    modulePath: (layer, linear) => modulePath(layer, llamaLinear(linear)),
    weightShapes: () => weightShapes(c),
    // The biases (rare: attention_bias / mlp_bias) are small and held like the norms.
    normValues: 2 * d * c.nLayers + d + (biasValues > 0 ? biasValues * Math.max(d, f, q) : 0),
    embeddingValues: c.vocabSize * d * (c.tieWordEmbeddings ? 1 : 2),
    blockSavedValues(rows, seqLen) {
      const n = rows * seqLen;
      let v = 2 * (n * d + n); // two RMSNorms: xhat [N, D] and rstd [N, 1]
      v += 2 * n * f; // gate and up outputs (the SwiGLU's inputs)
      // Attention: q and the key/value heads repeated to every query head, and the probabilities.
      v += 3 * n * q + scores(rows, seqLen);
      return v;
    },
    // Beside the attention's temporaries (five [B·H, T, T] and twelve head copies of q, k, v and
    // their gradients, as MPT's): RoPE's rotated copies and the grouped key/value sums (four [N, q]),
    // and the SwiGLU's activation and gradients (three [N, F]).
    blockWorkingValues(rows, seqLen) {
      const n = rows * seqLen;
      return 5 * scores(rows, seqLen) + 16 * n * q + 3 * n * f;
    },
    // The causal + padding bias of the step ([B, H, T, T]) beside the cached [1, H, T, T].
    attentionBiasValues: (rows, seqLen) => scores(rows + 1, seqLen),
  };
}

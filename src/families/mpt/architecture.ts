// MPT's architecture as data: the four Linears of a block (Wqkv, out_proj, up_proj, down_proj), their
// module paths and shapes, every weight name of a checkpoint, and what one block keeps for its
// backward (src/families/mpt/block.ts) — the numbers the memory plan and the FLOP count read.
import type { Architecture, LinearSpec } from '../../checkpoint/architecture.ts';
import type { MptConfig } from './config.ts';

export type MptLinearName = 'Wqkv' | 'out_proj' | 'up_proj' | 'down_proj';
/** A block's Linears in forward order. */
export const MPT_LINEARS: readonly MptLinearName[] = ['Wqkv', 'out_proj', 'up_proj', 'down_proj'];

type Sizes = Omit<MptConfig, 'arch'>;

/** PEFT's default LoRA targets for model_type "mpt" and the list its blocks are numbered in. */
export const MPT_PEFT_TARGETS: readonly string[] = ['Wqkv'];
export const MPT_LAYERS_PATTERN = 'blocks';

export function modulePath(layer: number, module: MptLinearName): string {
  const part = module === 'Wqkv' || module === 'out_proj' ? 'attn' : 'ffn';
  return `transformer.blocks.${layer}.${part}.${module}`;
}

export function ffnWidth(config: Sizes): number {
  return Math.floor(config.dModel * config.expansionRatio);
}

export function linearShape(config: Sizes, module: MptLinearName): { inF: number; outF: number } {
  const d = config.dModel;
  const f = ffnWidth(config);
  switch (module) {
    case 'Wqkv':
      return { inF: d, outF: 3 * d };
    case 'out_proj':
      return { inF: d, outF: d };
    case 'up_proj':
      return { inF: d, outF: f };
    case 'down_proj':
      return { inF: f, outF: d };
  }
}

const isMptLinear = (name: string): name is MptLinearName =>
  (MPT_LINEARS as readonly string[]).includes(name);

/** `name` as one of MPT's Linears; throws naming it and the four. */
export function mptLinear(name: string): MptLinearName {
  if (!isMptLinear(name)) throw new Error(`MPT has no Linear "${name}"; it has ${MPT_LINEARS.join(', ')}`);
  return name;
}

/** Every tensor name an MPT checkpoint must hold, with its shape (wpe, which few have, is apart). */
function weightShapes(c: Sizes): Map<string, readonly number[]> {
  const d = c.dModel;
  const out = new Map<string, readonly number[]>();
  out.set('transformer.wte.weight', [c.vocabSize, d]);
  out.set('transformer.norm_f.weight', [d]);
  for (let i = 0; i < c.nLayers; i++) {
    out.set(`transformer.blocks.${i}.norm_1.weight`, [d]);
    out.set(`transformer.blocks.${i}.norm_2.weight`, [d]);
    if (c.attn.qkLn) {
      out.set(`transformer.blocks.${i}.attn.q_ln.weight`, [d]);
      out.set(`transformer.blocks.${i}.attn.k_ln.weight`, [d]);
    }
    for (const m of MPT_LINEARS) {
      const { inF, outF } = linearShape(c, m);
      out.set(`${modulePath(i, m)}.weight`, [outF, inF]);
    }
  }
  return out;
}

export function mptArchitecture(c: Sizes): Architecture {
  const d = c.dModel;
  const f = ffnWidth(c);
  const linears: LinearSpec[] = MPT_LINEARS.map((name) => {
    const { inF, outF } = linearShape(c, name);
    return { name, inFeatures: inF, outFeatures: outF };
  });
  const scores = (rows: number, t: number) => rows * c.nHeads * t * t;
  return {
    displayName: 'MPT',
    peftDefaultTargets: MPT_PEFT_TARGETS,
    layersPattern: MPT_LAYERS_PATTERN,
    linears,
    inputGroups: [['Wqkv'], ['out_proj'], ['up_proj'], ['down_proj']],
    modulePath: (layer, linear) => modulePath(layer, mptLinear(linear)),
    weightShapes: () => weightShapes(c),
    normValues: (2 + (c.attn.qkLn ? 2 : 0)) * d * c.nLayers + d,
    embeddingValues: c.vocabSize * d + (c.attn.alibi ? 0 : c.maxSeqLen * d),
    blockSavedValues(rows, seqLen) {
      const n = rows * seqLen;
      let v = 2 * (n * d + n); // ln1, ln2: xhat [N, D] and rstd [N, 1]
      v += n * f; // preAct (up_proj output)
      // Attention: q, k, v (batched) or the host copy of qkv (plain-2d), and the probabilities.
      v += 3 * n * d + scores(rows, seqLen);
      if (c.attn.clipQkv !== null) v += 3 * n * d;
      if (c.attn.qkLn) v += 2 * (n * d + n);
      return v;
    },
    // The attention runs in one tf.tidy, which frees its intermediates only at the end: scores, scaled,
    // biased, softmax and its temporaries (five [B·H, T, T]; the backward's dP, dP⊙P, dS likewise); the
    // head split / merge copies of q, k, v and their gradients (twelve [N, D]); the FFN pre-activation
    // and its gradient (two [N, F]).
    blockWorkingValues(rows, seqLen) {
      const n = rows * seqLen;
      return 5 * scores(rows, seqLen) + 12 * n * d + 2 * n * f;
    },
    // The ALiBi + causal + padding bias of the step ([B, H, T, T]) beside the cached [1, H, T, T].
    attentionBiasValues: (rows, seqLen) => scores(rows + 1, seqLen),
  };
}

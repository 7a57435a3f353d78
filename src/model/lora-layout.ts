// Which MPT modules get LoRA adapters and the PEFT names and shapes of their A and B matrices — pure
// (no TensorFlow.js), so the coordinator can hold the adapter state without running the model.
import type { MptConfig } from './config.ts';

/** The Linear modules of an MPT block, in the order the model runs them. */
export const MPT_LINEARS = ['attn.Wqkv', 'attn.out_proj', 'ffn.up_proj', 'ffn.down_proj'] as const;

export interface LoraModule {
  /** Module path in the HF model, e.g. `transformer.blocks.3.attn.Wqkv`. */
  readonly module: string;
  readonly layer: number;
  readonly linear: (typeof MPT_LINEARS)[number];
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** PEFT's saved names: `base_model.model.<module>.lora_A.weight` [r, in] and `...lora_B.weight` [out, r]. */
  readonly aName: string;
  readonly bName: string;
}

function linearShape(config: MptConfig, linear: (typeof MPT_LINEARS)[number]): [number, number] {
  const d = config.dModel;
  const headDim = d / config.nHeads;
  const ffn = Math.floor(d * config.expansionRatio);
  switch (linear) {
    case 'attn.Wqkv':
      return [d, d + 2 * config.attn.kvNHeads * headDim];
    case 'attn.out_proj':
      return [d, d];
    case 'ffn.up_proj':
      return [d, ffn];
    case 'ffn.down_proj':
      return [ffn, d];
  }
}

/**
 * The adapted modules for PEFT-style `target_modules` (a module matches when its dotted name equals a
 * target or ends with `.<target>`), in model order. Throws naming targets that match nothing.
 */
export function loraModules(config: MptConfig, targets: readonly string[]): LoraModule[] {
  const out: LoraModule[] = [];
  const used = new Set<string>();
  for (let layer = 0; layer < config.nLayers; layer++) {
    for (const linear of MPT_LINEARS) {
      const module = `transformer.blocks.${layer}.${linear}`;
      const hit = targets.find((t) => module === t || module.endsWith(`.${t}`));
      if (hit === undefined) continue;
      used.add(hit);
      const [inFeatures, outFeatures] = linearShape(config, linear);
      const base = `base_model.model.${module}`;
      out.push({
        module,
        layer,
        linear,
        inFeatures,
        outFeatures,
        aName: `${base}.lora_A.weight`,
        bName: `${base}.lora_B.weight`,
      });
    }
  }
  const unused = targets.filter((t) => !used.has(t));
  if (unused.length > 0) {
    throw new Error(
      `lora_target_modules: ${unused.join(', ')} match no MPT module; MPT's linear modules are Wqkv, out_proj, up_proj, down_proj`,
    );
  }
  return out;
}

/** The adapter's tensors in canonical order (per module: A then B) with their shapes. */
export function loraParamSpecs(
  modules: readonly LoraModule[],
  r: number,
): { name: string; shape: number[] }[] {
  return modules.flatMap((m) => [
    { name: m.aName, shape: [r, m.inFeatures] },
    { name: m.bName, shape: [m.outFeatures, r] },
  ]);
}

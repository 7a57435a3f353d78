// Which MPT Linears get LoRA (PEFT's target_modules matching) and the PEFT names and shapes of their
// A/B tensors. The spec itself is lora-spec.ts, the initialisation lora-init.ts.
import type { MptConfig } from './config.ts';
import type { LoraSettings } from './lora-spec.ts';

// src/model still imports these from here; the spec's home is lora-spec.ts.
export type { LoraSettings } from './lora-spec.ts';
export { loraScaling } from './lora-spec.ts';

export type MptLinearName = 'Wqkv' | 'out_proj' | 'up_proj' | 'down_proj';
export const MPT_LINEARS: readonly MptLinearName[] = ['Wqkv', 'out_proj', 'up_proj', 'down_proj'];

export interface LoraTarget {
  readonly layer: number;
  readonly module: MptLinearName;
  /** Module path in the HF model, e.g. `transformer.blocks.0.attn.Wqkv`. */
  readonly path: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** PEFT saved key of A ([r, in]) and B ([out, r]). */
  readonly aName: string;
  readonly bName: string;
  /** PEFT saved key of DoRA's magnitude ([out]); only used with use_dora. */
  readonly magnitudeName: string;
}

export function modulePath(layer: number, module: MptLinearName): string {
  const part = module === 'Wqkv' || module === 'out_proj' ? 'attn' : 'ffn';
  return `transformer.blocks.${layer}.${part}.${module}`;
}

export function ffnWidth(config: MptConfig): number {
  return Math.floor(config.dModel * config.expansionRatio);
}

export function linearShape(config: MptConfig, module: MptLinearName): { inF: number; outF: number } {
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

/** PEFT's rule: a string is a regex that must match the whole module name; a list entry matches the
 * name itself or its last dotted components; 'all-linear' means every Linear but the output layer. */
export function matchesTarget(path: string, target: readonly string[] | string): boolean {
  if (typeof target === 'string') {
    if (target === 'all-linear') return true;
    return new RegExp(`^(?:${target})$`).test(path);
  }
  return target.some((t) => path === t || path.endsWith(`.${t}`));
}

/** Every LoRA target of the model, in layer then module order. Throws when a target matches nothing
 * LoRA can wrap here (PEFT raises the same way). */
export function loraTargets(config: MptConfig, s: LoraSettings): LoraTarget[] {
  if (!Number.isInteger(s.r) || s.r < 1) throw new Error(`LoRA r must be a positive integer, got ${s.r}`);
  if (!(s.loraDropout >= 0 && s.loraDropout < 1)) {
    throw new Error(`LoRA lora_dropout must be in [0, 1), got ${s.loraDropout}`);
  }
  const out: LoraTarget[] = [];
  for (let layer = 0; layer < config.nLayers; layer++) {
    for (const module of MPT_LINEARS) {
      const path = modulePath(layer, module);
      if (s.excludeModules != null && matchesTarget(path, s.excludeModules)) continue;
      if (!matchesTarget(path, s.targetModules)) continue;
      if (s.layersToTransform != null && !s.layersToTransform.includes(layer)) continue;
      const { inF, outF } = linearShape(config, module);
      const prefix = `base_model.model.${path}`;
      out.push({
        layer,
        module,
        path,
        inFeatures: inF,
        outFeatures: outF,
        aName: `${prefix}.lora_A.weight`,
        bName: `${prefix}.lora_B.weight`,
        magnitudeName: `${prefix}.lora_magnitude_vector`,
      });
    }
  }
  if (out.length === 0) {
    throw new Error(
      `LoRA target_modules ${JSON.stringify(s.targetModules)} match no MPT Linear; use some of ${MPT_LINEARS.join(', ')}`,
    );
  }
  return out;
}

// Which Linears of a model get LoRA (PEFT's target_modules matching) and the PEFT names and shapes of
// their A/B tensors. The spec itself is lora-spec.ts, the initialisation lora-init.ts.
import type { ModelConfig } from './architecture.ts';
import type { LoraSettings } from './lora-spec.ts';

export interface LoraTarget {
  readonly layer: number;
  /** The Linear's name in its block (the family's architecture, e.g. `Wqkv`). */
  readonly module: string;
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

/** PEFT's rule: a string is a regex that must match the whole module name; a list entry matches the
 * name itself or its last dotted components; 'all-linear' means every Linear but the output layer. */
export function matchesTarget(path: string, target: readonly string[] | string): boolean {
  if (typeof target === 'string') {
    if (target === 'all-linear') return true;
    return new RegExp(`^(?:${target})$`).test(path);
  }
  return target.some((t) => path === t || path.endsWith(`.${t}`));
}

/** The target_modules `s` means on `config`: its own, or (null) PEFT's default for the family. */
export function targetModulesOf(config: ModelConfig, s: LoraSettings): readonly string[] | string {
  return s.targetModules ?? config.arch.peftDefaultTargets;
}

/** Every LoRA target of the model, in layer then module order. Throws when a target matches nothing
 * LoRA can wrap here (PEFT raises the same way). */
export function loraTargets(config: ModelConfig, s: LoraSettings): LoraTarget[] {
  if (!Number.isInteger(s.r) || s.r < 1) throw new Error(`LoRA r must be a positive integer, got ${s.r}`);
  if (!(s.loraDropout >= 0 && s.loraDropout < 1)) {
    throw new Error(`LoRA lora_dropout must be in [0, 1), got ${s.loraDropout}`);
  }
  const targetModules = targetModulesOf(config, s);
  const out: LoraTarget[] = [];
  for (let layer = 0; layer < config.nLayers; layer++) {
    for (const linear of config.arch.linears) {
      const module = linear.name;
      const path = config.arch.modulePath(layer, module);
      if (s.excludeModules != null && matchesTarget(path, s.excludeModules)) continue;
      if (!matchesTarget(path, targetModules)) continue;
      if (s.layersToTransform != null && !s.layersToTransform.includes(layer)) continue;
      const prefix = `base_model.model.${path}`;
      out.push({
        layer,
        module,
        path,
        inFeatures: linear.inFeatures,
        outFeatures: linear.outFeatures,
        aName: `${prefix}.lora_A.weight`,
        bName: `${prefix}.lora_B.weight`,
        magnitudeName: `${prefix}.lora_magnitude_vector`,
      });
    }
  }
  if (out.length === 0) {
    const names = config.arch.linears.map((l) => l.name).join(', ');
    throw new Error(
      `LoRA target_modules ${JSON.stringify(targetModules)} match no ${config.arch.displayName} Linear; use some of ${names}`,
    );
  }
  return out;
}

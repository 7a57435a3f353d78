// Which Linears of a model get LoRA (PEFT's target_modules matching), the PEFT names and shapes of their
// A/B tensors, the scaling, and PEFT's initialisation (A kaiming-uniform a=√5, B zero), seeded.
import type { ModelConfig } from './architecture.ts';

/** The LoRA fields this code reads; PEFT's LoraConfig (src/checkpoint/peft-adapter.ts) fits this shape. */
export interface LoraSettings {
  readonly r: number;
  readonly loraAlpha: number;
  readonly loraDropout: number;
  /** A list (suffix match on the dotted module name) or one regex (full match), as in PEFT. */
  readonly targetModules: readonly string[] | string;
  readonly useRslora?: boolean;
  /** PEFT's use_dora: each target also learns a magnitude per output row (lora_magnitude_vector). */
  readonly useDora?: boolean;
  /** PEFT's layers_to_transform: only these block indices get LoRA (absent/null: all). */
  readonly layersToTransform?: readonly number[] | null;
  /** PEFT's exclude_modules: a list (suffix match) or one regex (full match) left without LoRA. */
  readonly excludeModules?: readonly string[] | string | null;
}

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

export function loraScaling(s: LoraSettings): number {
  return s.useRslora ? s.loraAlpha / Math.sqrt(s.r) : s.loraAlpha / s.r;
}

/** Every LoRA target of the model, in layer then module order. Throws when a target matches nothing
 * LoRA can wrap here (PEFT raises the same way). */
export function loraTargets(config: ModelConfig, s: LoraSettings): LoraTarget[] {
  if (!Number.isInteger(s.r) || s.r < 1) throw new Error(`LoRA r must be a positive integer, got ${s.r}`);
  if (!(s.loraDropout >= 0 && s.loraDropout < 1)) {
    throw new Error(`LoRA lora_dropout must be in [0, 1), got ${s.loraDropout}`);
  }
  const out: LoraTarget[] = [];
  for (let layer = 0; layer < config.nLayers; layer++) {
    for (const linear of config.arch.linears) {
      const module = linear.name;
      const path = config.arch.modulePath(layer, module);
      if (s.excludeModules != null && matchesTarget(path, s.excludeModules)) continue;
      if (!matchesTarget(path, s.targetModules)) continue;
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
      `LoRA target_modules ${JSON.stringify(s.targetModules)} match no ${config.arch.displayName} Linear; use some of ${names}`,
    );
  }
  return out;
}

/** Mulberry32: a small seeded uniform [0, 1) generator, enough for an initialisation. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** PEFT init: A ~ U(-1/√in, 1/√in) (kaiming_uniform_ with a = √5), B = 0. Keys are PEFT saved names. */
export function initLoraWeights(
  targets: readonly LoraTarget[],
  r: number,
  seed: number,
): Map<string, Float32Array> {
  const rand = mulberry32(seed);
  const out = new Map<string, Float32Array>();
  for (const t of targets) {
    const bound = 1 / Math.sqrt(t.inFeatures);
    const a = new Float32Array(r * t.inFeatures);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rand() - 1) * bound;
    out.set(t.aName, a);
    out.set(t.bName, new Float32Array(t.outFeatures * r));
  }
  return out;
}

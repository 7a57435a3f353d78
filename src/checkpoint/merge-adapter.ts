// An adapter folded into the base weights on the host, as PEFT's merge_and_unload does it, by the
// adapter's LoRA variant (src/checkpoint/lora-variants):
//   LoRA:  W' = W + s·B·A
//   DoRA:  W' = (m / ‖W + s·B·A‖_row) ⊙ (W + s·B·A)   (m = lora_magnitude_vector, one per output row)
// with s = alpha/r (alpha/√r with rsLoRA). Tensors stream through one at a time; only targeted Linear
// weights change. `lora-mpt merge` writes the result; evaluation and generation load the adapters of
// a variant that asks for it (DoRA) this way (their math is then exactly PEFT's merged model).
import type { HostTensor } from '../formats/host-tensor.ts';
import { type AdapterFeatures, type AdapterUse, adapterFeatures, containersOf } from './adapter-support.ts';
import type { ModelConfig } from './architecture.ts';
import { type LoraSettings, loraScaling } from './lora-spec.ts';
import { type LoraTarget, loraTargets } from './lora-targets.ts';
import { loraVariantOf } from './lora-variants/index.ts';
import type { HostAdapter, LoraVariant } from './lora-variants/types.ts';
import type { PeftAdapter } from './peft-adapter.ts';

export interface MergeEntry extends HostAdapter {
  readonly target: LoraTarget;
  /** The variant that merges it (plain LoRA, DoRA, ...). */
  readonly variant: LoraVariant;
}

/** Per base weight name (`transformer.blocks.0.attn.Wqkv.weight`), what to add. */
export type MergePlan = ReadonlyMap<string, MergeEntry>;

/** LoraSettings of an adapter, with the features its config switches on. */
export function adapterSettings(adapter: PeftAdapter, f: AdapterFeatures): LoraSettings {
  return {
    ...adapter.config.lora,
    useDora: f.useDora,
    layersToTransform: f.layersToTransform,
    excludeModules: f.excludeModules,
  };
}

/**
 * Checks that the adapter's tensors are exactly those its config implies for this model (naming the
 * first missing or unexpected key) and returns the plan. `source` names the adapter in errors.
 */
export function mergePlan(
  config: ModelConfig,
  adapter: PeftAdapter,
  use: AdapterUse,
  source: string,
): MergePlan {
  const features = adapterFeatures(adapter.config, use, source, containersOf(config));
  const settings = adapterSettings(adapter, features);
  const targets = loraTargets(config, settings);
  const variant = loraVariantOf(settings);
  const r = adapter.config.lora.r;
  const scale = loraScaling(adapter.config.lora);
  const expected = new Set<string>();
  const plan = new Map<string, MergeEntry>();
  for (const t of targets) {
    const get = (name: string) => {
      expected.add(name);
      const h = adapter.tensors.get(name);
      if (h === undefined) throw new Error(`${source}: missing ${name} (the config targets ${t.path})`);
      return h.data;
    };
    const a = get(t.aName);
    const b = get(t.bName);
    if (a.length !== r * t.inFeatures || b.length !== t.outFeatures * r) {
      throw new Error(`${source}: ${t.aName} / ${t.bName} do not have r=${r} and ${t.path}'s shape`);
    }
    const extras = variant.extraTensors(t).map((spec) => {
      const v = get(spec.name);
      const size = spec.shape.reduce((n, x) => n * x, 1);
      if (v.length !== size) throw new Error(`${source}: ${spec.name} must have ${size} values`);
      return v;
    });
    plan.set(`${t.path}.weight`, { target: t, a, b, r, scale, extras, variant });
  }
  for (const name of adapter.tensors.keys()) {
    if (!expected.has(name)) {
      throw new Error(
        `${source}: unexpected tensor ${name}: the adapter config (target_modules, layers_to_transform, use_dora, bias) does not account for it`,
      );
    }
  }
  return plan;
}

/** The checkpoint's tensors with the plan merged in; every planned weight must pass through. */
export async function* mergedTensors(
  tensors: AsyncIterable<HostTensor> | Iterable<HostTensor>,
  plan: MergePlan,
): AsyncIterable<HostTensor> {
  let merged = 0;
  for await (const t of tensors) {
    const e = plan.get(t.name);
    if (e !== undefined) {
      const { inFeatures, outFeatures } = e.target;
      if (t.shape.length !== 2 || t.shape[0] !== outFeatures || t.shape[1] !== inFeatures) {
        throw new Error(
          `checkpoint tensor ${t.name} has shape [${t.shape}], the adapter expects [${outFeatures}, ${inFeatures}]`,
        );
      }
      e.variant.mergeWeight(t.data, e); // float32 step by step, as PEFT merges on the CPU
      merged++;
    }
    yield t;
  }
  if (merged !== plan.size)
    throw new Error(`the checkpoint lacks ${plan.size - merged} of the weights the adapter changes`);
}

// An adapter folded into the base weights on the host, as PEFT's merge_and_unload does it:
//   LoRA:  W' = W + s·B·A
//   DoRA:  W' = (m / ‖W + s·B·A‖_row) ⊙ (W + s·B·A)   (m = lora_magnitude_vector, one per output row)
// with s = alpha/r (alpha/√r with rsLoRA). Tensors stream through one at a time; only targeted Linear
// weights change. `lora-mpt merge` writes the result; evaluation and generation load DoRA adapters
// this way (their math is then exactly PEFT's merged model).
import type { HostTensor } from '../formats/host-tensor.ts';
import { type AdapterFeatures, type AdapterUse, adapterFeatures } from './adapter-support.ts';
import type { ModelConfig } from './architecture.ts';
import { type LoraSettings, loraScaling } from './lora-spec.ts';
import { type LoraTarget, loraTargets } from './lora-targets.ts';
import type { PeftAdapter } from './peft-adapter.ts';

export interface MergeEntry {
  readonly target: LoraTarget;
  readonly a: Float32Array;
  readonly b: Float32Array;
  readonly r: number;
  readonly scale: number;
  /** DoRA's magnitude vector [out], null for plain LoRA. */
  readonly magnitude: Float32Array | null;
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
  const features = adapterFeatures(adapter.config, use, source);
  const targets = loraTargets(config, adapterSettings(adapter, features));
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
    let magnitude: Float32Array | null = null;
    if (features.useDora) {
      magnitude = get(t.magnitudeName);
      if (magnitude.length !== t.outFeatures)
        throw new Error(`${source}: ${t.magnitudeName} must have ${t.outFeatures} values`);
    }
    plan.set(`${t.path}.weight`, { target: t, a, b, r, scale, magnitude });
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

/**
 * W [out, in] plus the entry's update, in place, in float32 step by step as PEFT computes it on the
 * CPU (adapter weights are float32 even on a bf16/fp16 base): (B·A)[o,i] summed over k = 0..r-1 with a
 * float32 rounding after each fused multiply-add (what torch's sgemm does: equal on every element of
 * the committed adapters), delta = f32(B·A · s), W' = f32(W + delta); DoRA: factor = f32(m / ‖W'‖_row),
 * W'' = f32(factor·W'). A bf16/fp16 output is rounded from these float32 values once, by the writer.
 */
export function mergeWeight(w: Float32Array, e: MergeEntry): void {
  const { inFeatures: inF, outFeatures: outF } = e.target;
  const { a, b, r, scale } = e;
  const s = Math.fround(scale);
  const row = new Float32Array(inF); // each store rounds the exact b·a + acc to float32: a fused step
  for (let o = 0; o < outF; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k] as number;
      if (bk === 0) continue;
      const aRow = k * inF;
      for (let i = 0; i < inF; i++) row[i] = (row[i] as number) + bk * (a[aRow + i] as number);
    }
    const base = o * inF;
    let norm2 = 0;
    for (let i = 0; i < inF; i++) {
      const delta = Math.fround((row[i] as number) * s);
      const v = Math.fround((w[base + i] as number) + delta);
      w[base + i] = v;
      norm2 += v * v;
    }
    if (e.magnitude !== null) {
      const factor = Math.fround((e.magnitude[o] as number) / Math.fround(Math.sqrt(norm2)));
      for (let i = 0; i < inF; i++) w[base + i] = Math.fround((w[base + i] as number) * factor);
    }
  }
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
      mergeWeight(t.data, e);
      merged++;
    }
    yield t;
  }
  if (merged !== plan.size)
    throw new Error(`the checkpoint lacks ${plan.size - merged} of the weights the adapter changes`);
}

// A variant's trainable tensors at the start of a fresh run (DoRA: the magnitudes, ‖W + s·B·A‖ per row), read
// on the host from the base checkpoint one target weight at a time: the coordinator computes them too.
import type { HostTensor } from '../../formats/host-tensor.ts';
import type { LoraTarget } from '../lora-targets.ts';
import type { LoraVariant } from './types.ts';

/** The adapter a run starts from (PEFT saved names) and its scaling, when B may be non-zero. */
export interface StartingAdapter {
  readonly weights: ReadonlyMap<string, Float32Array>;
  readonly scale: number;
}

/** Every target's extra tensors (none for plain LoRA, which reads nothing), by PEFT saved name. */
export async function initialVariantTensors(
  variant: LoraVariant,
  targets: readonly LoraTarget[],
  readTensor: (name: string) => Promise<HostTensor>,
  start?: StartingAdapter,
): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const t of targets) {
    const specs = variant.extraTensors(t);
    if (specs.length === 0) continue;
    const w = await readTensor(`${t.path}.weight`);
    if (w.shape[0] !== t.outFeatures || w.shape[1] !== t.inFeatures) {
      throw new Error(
        `checkpoint tensor ${w.name} has shape [${w.shape}], LoRA expects [${t.outFeatures}, ${t.inFeatures}]`,
      );
    }
    const a = start?.weights.get(t.aName);
    const b = start?.weights.get(t.bName);
    const pair =
      start !== undefined && a !== undefined && b !== undefined ? { a, b, scale: start.scale } : null;
    const values = variant.initialValues(t, w.data, pair);
    for (const [i, s] of specs.entries()) out.set(s.name, values[i] as Float32Array);
  }
  return out;
}

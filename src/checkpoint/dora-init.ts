// DoRA's starting magnitudes: PEFT initialises lora_magnitude_vector to ‖W + s·B·A‖ per output row,
// which is ‖W‖ per row when B starts at zero (the default). Read on the host from the base
// checkpoint, one target weight at a time (no TensorFlow.js: the coordinator computes it too).
import type { HostTensor } from '../formats/host-tensor.ts';
import type { LoraTarget } from './lora-targets.ts';

/** ‖row‖₂ of W [out, in], summed in float64 and rounded to float32 once per row. */
export function rowNorms(w: Float32Array, outFeatures: number, inFeatures: number): Float32Array {
  const out = new Float32Array(outFeatures);
  for (let o = 0; o < outFeatures; o++) {
    let sum = 0;
    for (let i = o * inFeatures; i < (o + 1) * inFeatures; i++) sum += (w[i] as number) * (w[i] as number);
    out[o] = Math.sqrt(sum);
  }
  return out;
}

/** W + s·B·A [out, in] in float32 as PEFT forms it (B [out, r], A [r, in]). */
function withUpdate(w: Float32Array, a: Float32Array, b: Float32Array, scale: number, t: LoraTarget) {
  const r = a.length / t.inFeatures;
  const out = new Float32Array(w.length);
  for (let o = 0; o < t.outFeatures; o++) {
    for (let i = 0; i < t.inFeatures; i++) {
      let ba = 0;
      for (let k = 0; k < r; k++) ba += (b[o * r + k] as number) * (a[k * t.inFeatures + i] as number);
      out[o * t.inFeatures + i] = (w[o * t.inFeatures + i] as number) + scale * Math.fround(ba);
    }
  }
  return out;
}

/** The adapter a run starts from (PEFT saved names) and its scaling, when B may be non-zero. */
export interface StartingAdapter {
  readonly weights: ReadonlyMap<string, Float32Array>;
  readonly scale: number;
}

/** Every target's initial magnitude, by its PEFT saved name: ‖W‖ per row, or ‖W + s·B·A‖ when
 * `start` holds a B that is not all zero. */
export async function initialMagnitudes(
  targets: readonly LoraTarget[],
  readTensor: (name: string) => Promise<HostTensor>,
  start?: StartingAdapter,
): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const t of targets) {
    const w = await readTensor(`${t.path}.weight`);
    if (w.shape[0] !== t.outFeatures || w.shape[1] !== t.inFeatures) {
      throw new Error(
        `checkpoint tensor ${w.name} has shape [${w.shape}], LoRA expects [${t.outFeatures}, ${t.inFeatures}]`,
      );
    }
    const a = start?.weights.get(t.aName);
    const b = start?.weights.get(t.bName);
    const weight = a && b?.some((x) => x !== 0) ? withUpdate(w.data, a, b, start?.scale ?? 1, t) : w.data;
    out.set(t.magnitudeName, rowNorms(weight, t.outFeatures, t.inFeatures));
  }
  return out;
}

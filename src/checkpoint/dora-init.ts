// DoRA's starting magnitudes: PEFT initialises lora_magnitude_vector to ‖W + s·B·A‖ per output row,
// which is ‖W‖ per row since B starts at zero. Read on the host from the base checkpoint, one target
// weight at a time (no TensorFlow.js: the coordinator computes it too).
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

/** Every target's initial magnitude, by its PEFT saved name. */
export async function initialMagnitudes(
  targets: readonly LoraTarget[],
  readTensor: (name: string) => Promise<HostTensor>,
): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const t of targets) {
    const w = await readTensor(`${t.path}.weight`);
    if (w.shape[0] !== t.outFeatures || w.shape[1] !== t.inFeatures) {
      throw new Error(
        `checkpoint tensor ${w.name} has shape [${w.shape}], LoRA expects [${t.outFeatures}, ${t.inFeatures}]`,
      );
    }
    out.set(t.magnitudeName, rowNorms(w.data, t.outFeatures, t.inFeatures));
  }
  return out;
}

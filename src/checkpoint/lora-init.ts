// PEFT's initialisation of a new adapter (LoraLayer.reset_lora_parameters in PEFT 0.21), seeded, by
// init_lora_weights:
//   true:       A ~ U(-1/√in, 1/√in) (kaiming-uniform, a = √5), B = 0
//   "gaussian": A ~ N(0, (1/r)²), B = 0
//   false:      no reset, so nn.Linear's own init for both: A ~ U(-1/√in, 1/√in), B ~ U(-1/√r, 1/√r)
// With B = 0 training starts at the base model. DoRA's magnitudes start at ‖W + s·B·A‖ per row
// (lora-variants/dora.ts), read from the base weights.
import type { LoraSettings } from './lora-spec.ts';
import type { LoraTarget } from './lora-targets.ts';

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

/** U(-bound, bound) in a new array of n. */
function uniform(n: number, bound: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < out.length; i++) out[i] = (2 * rand() - 1) * bound;
  return out;
}

/** N(0, std²) in a new array of n (Box–Muller; 1 - u keeps the logarithm finite). */
function normal(n: number, std: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < out.length; i += 2) {
    const radius = std * Math.sqrt(-2 * Math.log(1 - rand()));
    const angle = 2 * Math.PI * rand();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < out.length) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}

/** Every target's A and B (PEFT saved names) for a new adapter of `lora`'s rank and init_lora_weights. */
export function initLoraWeights(
  targets: readonly LoraTarget[],
  lora: Pick<LoraSettings, 'r' | 'initLoraWeights'>,
  seed: number,
): Map<string, Float32Array> {
  const rand = mulberry32(seed);
  const { r } = lora;
  const init = lora.initLoraWeights ?? true;
  const out = new Map<string, Float32Array>();
  for (const t of targets) {
    const a =
      init === 'gaussian'
        ? normal(r * t.inFeatures, 1 / r, rand)
        : uniform(r * t.inFeatures, 1 / Math.sqrt(t.inFeatures), rand);
    out.set(t.aName, a);
    out.set(
      t.bName,
      init === false
        ? uniform(t.outFeatures * r, 1 / Math.sqrt(r), rand)
        : new Float32Array(t.outFeatures * r),
    );
  }
  return out;
}

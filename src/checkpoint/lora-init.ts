// PEFT's initialisation of a new adapter, seeded: A kaiming-uniform with a = √5, i.e.
// U(-1/√in, 1/√in) (what nn.Linear does to its weight), and B = 0, so training starts at the base
// model. DoRA's magnitudes start at ‖W + s·B·A‖ per row (dora-init.ts), read from the base weights.
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

/** Every target's A and B (PEFT saved names) for a new adapter of `lora`'s rank. */
export function initLoraWeights(
  targets: readonly LoraTarget[],
  lora: Pick<LoraSettings, 'r'>,
  seed: number,
): Map<string, Float32Array> {
  const rand = mulberry32(seed);
  const { r } = lora;
  const out = new Map<string, Float32Array>();
  for (const t of targets) {
    out.set(t.aName, uniform(r * t.inFeatures, 1 / Math.sqrt(t.inFeatures), rand));
    out.set(t.bName, new Float32Array(t.outFeatures * r));
  }
  return out;
}

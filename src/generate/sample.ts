// Drawing one token from softmax(warped scores) with a seeded generator, so the same seed, prompt
// and settings give the same text on any machine (PyTorch's multinomial draws cannot be reproduced;
// what matches transformers is the distribution, see logits-warpers.ts).
import { Rng } from '../data/rng.ts';

/** A uniform double in [0, 1) from 53 random bits. */
export function uniform01(rng: Rng): number {
  const hi = rng.nextU32() >>> 5; // 27 bits
  const lo = rng.nextU32() >>> 6; // 26 bits
  return (hi * 67108864 + lo) / 9007199254740992;
}

/** A token drawn with probability softmax(scores); -Infinity entries are never drawn. */
export function sampleToken(scores: Float32Array, rng: Rng): number {
  let max = -Infinity;
  for (const v of scores) if (v > max) max = v;
  if (max === -Infinity) throw new Error('sampleToken: every token was filtered out');
  let sum = 0;
  for (const v of scores) sum += Math.exp(v - max);
  let u = uniform01(rng) * sum;
  let last = -1;
  for (let i = 0; i < scores.length; i++) {
    const p = Math.exp((scores[i] as number) - max);
    if (p === 0) continue;
    last = i;
    u -= p;
    if (u < 0) return i;
  }
  return last; // rounding left u a hair above 0: the last drawable token
}

/** The generator of one request: its seed, or a fresh random one. */
export function requestRng(seed: number | null): { readonly rng: Rng; readonly seed: number } {
  const s = seed ?? Math.floor(Math.random() * 2 ** 31);
  return { rng: new Rng(s, 0x9e17), seed: s };
}

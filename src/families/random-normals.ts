// Seeded normal draws for the random checkpoints of every family (the demo's base model, the tests').
import type { Rng } from '../data/rng.ts';

/** Standard normal draws from the seeded generator (Box-Muller). */
export function normals(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = (rng.nextU32() + 1) / 2 ** 32;
    const u2 = rng.nextU32() / 2 ** 32;
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

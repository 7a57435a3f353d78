// A small seeded PRNG for the data plan (split, per-epoch shuffle, length grouping): xoshiro128**
// (Blackman & Vigna), state filled by splitmix32 from a key of integers, e.g. (seed, epoch, stream).
// Pure 32-bit integer arithmetic, so every platform and every process draws the same numbers.

/** Mixes one 32-bit value (splitmix32 finalizer). */
function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `key`: integers (each taken mod 2^32, negative allowed) that name one independent stream. */
  constructor(...key: readonly number[]) {
    let h = 0x6a09e667;
    for (const k of key) {
      if (!Number.isInteger(k)) throw new Error(`Rng key ${k} is not an integer`);
      h = mix32(h ^ (k >>> 0));
      h = mix32(h ^ (Math.floor(k / 2 ** 32) >>> 0));
    }
    this.s0 = mix32(h);
    this.s1 = mix32(this.s0 ^ 1);
    this.s2 = mix32(this.s1 ^ 2);
    this.s3 = mix32(this.s2 ^ 3);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** A generator in a given state (reference test vectors start from the state {1, 2, 3, 4}). */
  static fromState(s0: number, s1: number, s2: number, s3: number): Rng {
    const r = new Rng();
    r.s0 = s0 | 0;
    r.s1 = s1 | 0;
    r.s2 = s2 | 0;
    r.s3 = s3 | 0;
    return r;
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform integer in [0, n), n <= 2^32, without modulo bias (rejection sampling). */
  below(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new Error(`Rng.below: bad bound ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Shuffles in place (Fisher-Yates) and returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

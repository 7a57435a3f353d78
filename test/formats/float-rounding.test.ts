// float32 → bfloat16 / float16 rounding, checked against the definition rather than the bit trick:
// the nearer of the two representable neighbours (found by comparing distances in float64), the
// one with an even last bit on a tie, ±Infinity past the largest finite value plus half an ulp.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  convertFromFloat32,
  floatToBf16Bits,
  floatToHalfBits,
  halfToFloat,
} from '../../src/formats/dtypes.ts';

const bf16Value = (bits: number) => new Float32Array(new Uint32Array([bits << 16]).buffer)[0] as number;

/**
 * The bits of the value nearest |x| among bits 0..inf (bit order is value order for non-negative
 * floats; `inf` is +Infinity's bits, worth `top` — the next power of the format — when measuring
 * distance), ties to the even bits, with x's sign bit (bit 15).
 */
function nearest(x: number, inf: number, value: (bits: number) => number, top: number): number {
  const worth = (b: number) => (b === inf ? top : value(b));
  const ax = Math.abs(x);
  let lo = 0; // worth(lo) <= ax
  let hi = inf; // found: worth(hi) > ax, or hi is Infinity
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (worth(mid) <= ax) lo = mid;
    else hi = mid;
  }
  const below = ax - worth(lo);
  const above = worth(hi) - ax;
  const bits = ax >= top ? inf : below < above ? lo : above < below ? hi : lo % 2 === 0 ? lo : hi;
  return bits | (x < 0 || Object.is(x, -0) ? 0x8000 : 0);
}

/** Random float32 values across the exponents that matter, plus exact ties and edge cases. */
function samples(tieFor: (i: number) => number): number[] {
  const u32 = new Uint32Array(1);
  const f32 = new Float32Array(u32.buffer);
  const out: number[] = [
    0,
    -0,
    1,
    -1,
    65504,
    65519.99,
    65520,
    -65520,
    1e6,
    1e-8,
    2 ** -25,
    2 ** -24,
    3 * 2 ** -26,
  ];
  let seed = 12345;
  const next = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed;
  };
  for (let i = 0; i < 20_000; i++) {
    u32[0] = next();
    if (Number.isFinite(f32[0])) out.push(f32[0] as number);
    out.push(tieFor(i));
  }
  return out;
}

describe('float32 to bfloat16', () => {
  it('rounds to the nearer bfloat16, ties to the even one', () => {
    // A tie: a bf16 value plus exactly half its ulp (bit 15 set, bits 14..0 clear).
    const ties = samples(
      (i) => new Float32Array(new Uint32Array([((i * 7919) << 16) | 0x8000]).buffer)[0] as number,
    );
    let checked = 0;
    for (const x of ties) {
      if (!Number.isFinite(x)) continue;
      const want = nearest(x, 0x7f80, bf16Value, 2 ** 128);
      assert.equal(floatToBf16Bits(x), want, `${x}`);
      checked++;
    }
    assert.ok(checked > 30_000, `${checked} values checked`);
  });

  it('keeps infinities and NaN', () => {
    assert.equal(floatToBf16Bits(Number.POSITIVE_INFINITY), 0x7f80);
    assert.equal(floatToBf16Bits(Number.NEGATIVE_INFINITY), 0xff80);
    assert.ok(Number.isNaN(bf16Value(floatToBf16Bits(Number.NaN))));
  });
});

describe('float32 to float16', () => {
  it('rounds to the nearer float16 (subnormals included), ties to the even one, overflow to Infinity', () => {
    // A tie: a half value plus exactly half its ulp.
    const ties = samples((i) => {
      const h = (i * 40503) % 0x7bff;
      return (halfToFloat(h) + halfToFloat(h + 1)) / 2;
    });
    let checked = 0;
    for (const x of ties) {
      const want = nearest(x, 0x7c00, halfToFloat, 65536);
      assert.equal(floatToHalfBits(x), want, `${x}`);
      checked++;
    }
    assert.ok(checked > 30_000, `${checked} values checked`);
  });

  it('writes a tensor as little-endian 16-bit values and float32 as its own bytes', () => {
    const data = Float32Array.from([1, -2, 0.1]);
    const f16 = convertFromFloat32(data, 'F16');
    assert.deepEqual([...new Uint16Array(f16.buffer)], [...data].map(floatToHalfBits));
    assert.deepEqual(convertFromFloat32(data, 'F32'), new Uint8Array(data.buffer));
  });
});

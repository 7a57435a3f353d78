// The all-reduce's float loops, both implementations (src/collective/float-sum.ts's JavaScript and
// the compiled native/float-kernels addon, which CI builds), held to references written here: each
// sum element is Math.fround(a + b), bit for bit (signed zeros, subnormals, rounding at FLT_MAX);
// the finiteness test names the first NaN or ±Infinity wherever it sits (in and after the addon's
// 8-element blocks); sums of squares agree with a compensated (Neumaier) sum of the exact float64
// squares. The addon checks its arguments instead of touching memory it was not given.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { floatKernelsKind, nativeFloatKernels } from '../../src/collective/float-kernels.ts';
import { jsFloatSums } from '../../src/collective/float-sum.ts';

const FLT_MAX = 3.4028234663852886e38;
const FLT_MIN_SUB = 1.401298464324817e-45;

/** Seeded values over the whole float32 range: tiny, subnormal, huge, signed zeros, ties. */
function values(length: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const special = [0, -0, FLT_MIN_SUB, -FLT_MIN_SUB, FLT_MAX, -FLT_MAX, 1, 2 ** -24, 1 + 2 ** -23];
  return Float32Array.from({ length }, () => {
    const r = rand();
    if (r < 0.1) return special[Math.floor(rand() * special.length)]!;
    // 2^-149 .. just under 2^127 · 2: every float32 exponent, none rounding to Infinity.
    return (rand() < 0.5 ? -1 : 1) * 2 ** (Math.floor(rand() * 276) - 149) * (1 + 0.99 * rand());
  });
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
function assertSameBits(got: Float32Array, want: Float32Array, what: string): void {
  const [g, w] = [bits(got), bits(want)];
  assert.equal(g.length, w.length, what);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) assert.fail(`${what}: element ${i} is ${got[i]}, want ${want[i]}`);
  }
}
const fround2 = (a: Float32Array, b: Float32Array) => a.map((x, i) => Math.fround(x + b[i]!));

/** Σ x² with Neumaier's compensation: within an ulp or so of the exact sum of the exact squares. */
function squaresRef(a: Float32Array): number {
  let s = 0;
  let c = 0;
  for (const x of a) {
    const t = s + x * x; // x·x is exact in float64 for a float32 x (48-bit significand)
    c += Math.abs(s) >= x * x ? s - t + x * x : x * x - t + s;
    s = t;
  }
  return s + c;
}

interface Impl {
  sum(out: Float32Array, a: Float32Array, b: Float32Array): boolean;
  add(out: Float32Array, a: Float32Array): boolean;
  sumMeasured(out: Float32Array, a: Float32Array, b: Float32Array, sq: Float64Array): boolean;
  addMeasured(out: Float32Array, a: Float32Array, sq: Float64Array): boolean;
  squares(a: Float32Array): number;
  anyNonFinite(a: Float32Array): boolean;
  copyChecked(dst: Float32Array, src: Float32Array): number;
}

const js: Impl = {
  sum: (o, a, b) => Number.isNaN(jsFloatSums.sumInto(o, a, b, true)),
  add: (o, a) => Number.isNaN(jsFloatSums.addInto(o, a, true)),
  sumMeasured: (o, a, b, q) => Number.isNaN(jsFloatSums.sumMeasured(o, a, b, q)),
  addMeasured: (o, a, q) => Number.isNaN(jsFloatSums.addMeasured(o, a, q)),
  squares: jsFloatSums.sumOfSquares,
  anyNonFinite: (a) => jsFloatSums.firstNonFinite(a) >= 0,
  copyChecked: jsFloatSums.copyChecked,
};
const n = nativeFloatKernels;
const native: Impl | undefined = n && {
  ...n,
  copyChecked: (d, s) => (n.copyChecked(d, s) ? s.findIndex((x) => !Number.isFinite(x)) : -1),
};

// Lengths around the addon's 8-element blocks and vector widths, and a large one.
const LENGTHS = [0, 1, 3, 7, 8, 9, 15, 16, 17, 33, 1001, 65_539];

describe('the all-reduce float loops', () => {
  it('runs the compiled loops where the addon is built (CI builds it)', (t) => {
    if (process.env.CI) assert.equal(floatKernelsKind, 'native', 'CI runs scripts/setup-native.sh');
    else if (floatKernelsKind === 'js')
      t.skip('native/float-kernels not built (bash scripts/setup-native.sh)');
  });

  for (const [name, impl] of [
    ['JavaScript', js],
    ['native', native],
  ] as const) {
    describe(name, () => {
      const skip = impl === undefined ? 'the addon is not built' : false;
      it('sums in float32, bit for bit what Math.fround(a + b) gives, and says when all are finite', {
        skip,
      }, () => {
        for (const len of LENGTHS) {
          // Halved so that no sum overflows: the finiteness answer must be "all finite".
          const a = values(len, len + 1).map((x) => x / 2);
          const b = values(len, len + 2).map((x) => x / 2);
          const out = new Float32Array(len);
          assert.equal(impl!.sum(out, a, b), false, `length ${len}`);
          assertSameBits(out, fround2(a, b), `sum, length ${len}`);
          const acc = a.slice();
          assert.equal(impl!.add(acc, b), false);
          assertSameBits(acc, fround2(a, b), `add, length ${len}`);
          // In place: out is one of the parts (the ring adds into its result).
          const inPlace = a.slice();
          impl!.sum(inPlace, inPlace, b);
          assertSameBits(inPlace, fround2(a, b), `sum in place, length ${len}`);
          const sq = new Float64Array(2);
          const measured = new Float32Array(len);
          assert.equal(impl!.sumMeasured(measured, a, b, sq), false);
          assertSameBits(measured, fround2(a, b), `sumMeasured, length ${len}`);
          for (const [k, v] of [a, b].entries()) {
            const want = squaresRef(v);
            assert.ok(Math.abs(sq[k]! - want) <= 1e-13 * want, `Σ squares ${k}, length ${len}`);
            assert.ok(Math.abs(impl!.squares(v) - want) <= 1e-13 * want, `squares(), length ${len}`);
          }
          const acc2 = a.slice();
          assert.equal(impl!.addMeasured(acc2, b, sq), false);
          assertSameBits(acc2, fround2(a, b), `addMeasured, length ${len}`);
          assert.ok(Math.abs(sq[0]! - squaresRef(b)) <= 1e-13 * squaresRef(b));
        }
      });

      it('reports float32 overflow of a sum of finite parts', { skip }, () => {
        const out = new Float32Array(9);
        const a = new Float32Array(9).fill(FLT_MAX);
        assert.equal(impl!.sum(out, a, a), true);
        assert.equal(out[8], Number.POSITIVE_INFINITY);
        // FLT_MAX + a quarter ulp rounds back to FLT_MAX: finite; + half an ulp is a tie that rounds
        // to even, away from FLT_MAX (odd significand): Infinity.
        assert.equal(impl!.sum(out, a, new Float32Array(9).fill(2 ** 102)), false);
        assert.equal(out[0], FLT_MAX);
        assert.equal(impl!.sum(out, a, new Float32Array(9).fill(2 ** 103)), true);
        assert.equal(impl!.sum(out, a, new Float32Array(9).fill(2 ** 102)), false);
        assert.equal(out[0], FLT_MAX);
      });

      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        it(`finds ${bad} at every position, in and after the 8-element blocks`, { skip }, () => {
          for (const len of [1, 8, 9, 20]) {
            for (let at = 0; at < len; at++) {
              const a = values(len, at).map((x) => x / 4);
              a[at] = bad;
              const b = values(len, at + 7).map((x) => x / 4);
              const where = `${bad} at ${at} of ${len}`;
              assert.equal(impl!.anyNonFinite(a), true, where);
              assert.equal(impl!.sum(new Float32Array(len), b, a), true, where);
              assert.equal(impl!.add(b.slice(), a), true, where);
              assert.equal(impl!.sumMeasured(new Float32Array(len), b, a, new Float64Array(2)), true, where);
              assert.equal(impl!.addMeasured(b.slice(), a, new Float64Array(1)), true, where);
              const dst = new Float32Array(len);
              assert.equal(impl!.copyChecked(dst, a), at, where);
              assertSameBits(dst, a, `copy, ${where}`);
              assert.equal(impl!.anyNonFinite(b), false, `finite neighbour, ${where}`);
            }
          }
        });
      }

      it('copies exactly and finds nothing in finite values, ±FLT_MAX and subnormals included', {
        skip,
      }, () => {
        const src = values(1001, 5);
        const dst = new Float32Array(1001);
        assert.equal(impl!.copyChecked(dst, src), -1);
        assertSameBits(dst, src, 'copy');
      });
    });
  }

  it('the addon refuses wrong arguments instead of reading past them', { skip: !n && 'not built' }, () => {
    const f = new Float32Array(4);
    assert.throws(() => n!.sum(f, f, new Float32Array(3)), {
      name: 'RangeError',
      message: 'sum: out and b differ in length',
    });
    assert.throws(() => n!.add(f, new Float64Array(4) as never), {
      name: 'TypeError',
      message: 'add: a must be a Float32Array',
    });
    assert.throws(() => n!.sumMeasured(f, f, f, new Float64Array(1)), {
      name: 'RangeError',
      message: 'sumMeasured: sq must hold 2 values',
    });
    assert.throws(() => n!.addMeasured(f, f, new Float32Array(1) as never), {
      name: 'TypeError',
      message: 'addMeasured: sq must be a Float64Array',
    });
    assert.throws(() => n!.squares([1, 2] as never), { name: 'TypeError' });
    assert.throws(() => (n!.anyNonFinite as () => boolean)(), { name: 'TypeError' });
    const shared = new Float32Array(8);
    assert.throws(() => n!.copyChecked(shared.subarray(0, 4), shared.subarray(2, 6)), {
      name: 'RangeError',
      message: 'copyChecked: dst and src overlap',
    });
    // A detached buffer has no elements left: refused, not read.
    const gone = new Float32Array(4);
    structuredClone(gone.buffer, { transfer: [gone.buffer] });
    assert.throws(() => n!.copyChecked(new Float32Array(4), gone), {
      name: 'RangeError',
      message: 'copyChecked: dst and src differ in length',
    });
  });
});

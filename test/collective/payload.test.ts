import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { floatKernelsKind } from '../../src/collective/float-kernels.ts';
import { addInto, addMeasured, sumInto, sumMeasured } from '../../src/collective/float-sum.ts';
import { FramePayload } from '../../src/collective/payload.ts';

const refuse = (value: number) => new Error(`refused ${value}`);
/** `xs` as payload bytes starting `shift` bytes into a fresh buffer. */
function payloadAt(xs: readonly number[], shift: number): Uint8Array {
  const bytes = new Uint8Array(new Float32Array(xs).buffer);
  const at = new Uint8Array(shift + bytes.length);
  at.set(bytes, shift);
  return at.subarray(shift);
}

describe('frame payload', () => {
  it('reads an aligned payload in place and copies an unaligned one, same values either way', () => {
    const xs = [1.5, -2, 3.25];
    for (const shift of [0, 4, 1, 2, 3]) {
      const bytes = payloadAt(xs, shift);
      const dst = new Float32Array(8);
      const view = new FramePayload(bytes, 'f32', refuse).floats(dst, 2);
      assert.deepEqual([...view], xs);
      assert.equal(view.buffer === dst.buffer, shift % 4 !== 0, `shift ${shift}`);
    }
  });

  // The class, not one example: NaN, both infinities, and the largest finite values beside them.
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    it(`check() and copyTo() refuse ${bad} wherever it sits, aligned or not`, () => {
      for (const shift of [0, 1]) {
        for (const at of [0, 2]) {
          const xs = [1, 2, 3];
          xs[at] = bad;
          const p = new FramePayload(payloadAt(xs, shift), 'f32', refuse);
          assert.throws(() => p.check(p.floats(new Float32Array(3), 0)), { message: `refused ${bad}` });
          assert.throws(() => p.copyTo(new Float32Array(3), 0), { message: `refused ${bad}` });
        }
      }
    });
  }

  it('accepts ±FLT_MAX and -0', () => {
    const p = new FramePayload(
      payloadAt([3.4028234663852886e38, -3.4028234663852886e38, -0], 0),
      'f32',
      refuse,
    );
    p.check(p.floats(new Float32Array(3), 0));
    assert.equal(p.copyTo(new Float32Array(3), 0)[0], 3.4028234663852886e38);
  });
});

describe('float32 sums with a finiteness check', () => {
  const FLT_MAX = 3.4028234663852886e38;
  it('sum in float32 and report 0 while every result is finite', () => {
    const out = new Float32Array(2);
    assert.equal(
      sumInto(out, new Float32Array([1, FLT_MAX]), new Float32Array([2 ** -30, -FLT_MAX]), true),
      0,
    );
    assert.deepEqual([...out], [1, 0]); // 1 + 2^-30 rounds to 1 in float32
    assert.equal(addInto(out, new Float32Array([0.5, 1]), true), 0);
    assert.deepEqual([...out], [1.5, 1]);
  });

  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    it(`reports a ${bad} part or result as NaN when asked to check`, () => {
      const out = new Float32Array(3);
      assert.ok(Number.isNaN(sumInto(out, new Float32Array([1, bad, 3]), new Float32Array(3), true)));
      assert.ok(Number.isNaN(addInto(new Float32Array(3), new Float32Array([0, 0, bad]), true)));
    });
  }

  it('reports a float32 overflow (finite in double) as not finite', () => {
    const out = new Float32Array(1);
    assert.ok(Number.isNaN(sumInto(out, new Float32Array([FLT_MAX]), new Float32Array([FLT_MAX]), true)));
    assert.equal(out[0], Number.POSITIVE_INFINITY);
  });
});

describe("the shard owner's measured sums", () => {
  const xs = Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 1e20);
  const ys = Float32Array.from({ length: 1001 }, (_, i) => Math.cos(i * 0.7) * 3);
  // The definition: float64 squares of the float32 values, summed in index order from 0. The
  // JavaScript loops give exactly that; the compiled ones (float-kernels.ts) sum the same squares in
  // eight partial sums, so they agree to rounding (float-kernels.test.ts holds both to a
  // compensated sum).
  const squaresOf = (v: Float32Array) => {
    let s = 0;
    for (const x of v) s += x * x;
    return s;
  };
  const assertSquares = (got: number, v: Float32Array) => {
    if (floatKernelsKind === 'js') assert.equal(got, squaresOf(v));
    else assert.ok(Math.abs(got - squaresOf(v)) <= 1e-12 * squaresOf(v), `${got} vs ${squaresOf(v)}`);
  };
  const froundSum = (a: Float32Array, b: Float32Array) => a.map((x, i) => Math.fround(x + b[i]!));

  it(`sum as sumInto/addInto do, bit for bit, and hand back each part’s sum of squares (${floatKernelsKind} loops)`, () => {
    const out = new Float32Array(xs.length);
    const want = new Float32Array(xs.length);
    const squares = new Float64Array(2);
    assert.equal(sumMeasured(out, xs, ys, squares), 0);
    sumInto(want, xs, ys, false);
    assert.equal(Buffer.compare(Buffer.from(out.buffer), Buffer.from(want.buffer)), 0);
    assert.equal(Buffer.compare(Buffer.from(out.buffer), Buffer.from(froundSum(xs, ys).buffer)), 0);
    assertSquares(squares[0]!, xs);
    assertSquares(squares[1]!, ys);
    assert.equal(addMeasured(out, ys, squares), 0);
    addInto(want, ys, false);
    assert.equal(Buffer.compare(Buffer.from(out.buffer), Buffer.from(want.buffer)), 0);
    assertSquares(squares[0]!, ys);
  });

  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    it(`report a ${bad} part as NaN`, () => {
      const squares = new Float64Array(2);
      const withBad = Float32Array.from([1, bad, 3]);
      assert.ok(Number.isNaN(sumMeasured(new Float32Array(3), new Float32Array(3), withBad, squares)));
      assert.ok(Number.isNaN(addMeasured(new Float32Array(3), withBad, squares)));
    });
  }
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica, finalizeGradient } from '../../src/train/replica.ts';

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31 - 0.5;
  });
}

describe('adapter replica', () => {
  it('divides the summed gradient by the step token count and reports the clip norm', () => {
    const sum = Float32Array.from([3, 4]);
    const f = finalizeGradient(sum, 10, 1.0);
    assert.ok(Math.abs(f.norm - 0.5) < 1e-7);
    assert.deepEqual(Array.from(f.grad), [Math.fround(0.3), Math.fround(0.4)]);
    const clipped = finalizeGradient(Float32Array.from([30, 40]), 1, 1.0);
    assert.ok(Math.abs(Math.hypot(...clipped.grad) - 1) < 1e-5);
  });

  it('refuses a step without supervised tokens', () => {
    assert.throws(() => finalizeGradient(new Float32Array(2), 0, 1), /needs supervised tokens/);
  });

  it('keeps two replicas bitwise identical and repairs a corrupted one by restore', () => {
    const layout = paramLayout([{ name: 'w', shape: [4, 8] }]);
    const a = new AdapterReplica(layout, rand(32, 1));
    const b = new AdapterReplica(layout, rand(32, 1));
    for (let s = 0; s < 3; s++) {
      const g = rand(32, 10 + s);
      a.apply(finalizeGradient(Float32Array.from(g), 7, 1).grad, 1e-3);
      b.apply(finalizeGradient(Float32Array.from(g), 7, 1).grad, 1e-3);
    }
    assert.equal(a.checksum(), b.checksum());
    b.state.params[5] = b.state.params[5]! + 1e-3;
    assert.notEqual(a.checksum(), b.checksum());
    b.restore(a.state);
    assert.equal(a.checksum(), b.checksum());
    assert.equal(b.step, 3);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flipBits, parseFaultPlan } from '../../src/worker/fault-injection.ts';

// The corrupting-GPU fault the contribution tests rely on: each changed value differs from the
// original in exactly one bit (counted here by xor and popcount, not by the fault's own count).
describe('flip_bits fault', () => {
  const original = Float32Array.from({ length: 100_000 }, (_, i) => Math.sin(i) * 1e-3);
  const popcount = (x: number) => {
    let n = 0;
    for (let v = x >>> 0; v !== 0; v &= v - 1) n++;
    return n;
  };

  it('flips one bit in about P of the values, the same ones for the same seed', () => {
    const a = original.slice();
    const said = flipBits(a, 0.01, 'w:1:1');
    const before = new Uint32Array(original.buffer);
    const after = new Uint32Array(a.buffer);
    let changed = 0;
    for (let i = 0; i < before.length; i++) {
      const d = before[i]! ^ after[i]!;
      if (d === 0) continue;
      changed++;
      assert.equal(popcount(d), 1, `value ${i}: ${original[i]} became ${a[i]}`);
    }
    assert.equal(changed, said);
    assert.ok(changed > 800 && changed < 1200, `${changed} of 100000 changed at P = 0.01`);
    const b = original.slice();
    flipBits(b, 0.01, 'w:1:1');
    assert.deepEqual(new Uint32Array(b.buffer), after, 'a seed repeats');
    const c = original.slice();
    flipBits(c, 0.01, 'w:2:1');
    assert.notDeepEqual(new Uint32Array(c.buffer), after, 'another seed flips others');
  });

  it('parses flip_bits and lie_norm, refusing what is not a probability or a number', () => {
    assert.deepEqual(parseFaultPlan('flip_bits=0.01,lie_norm=1e-30'), { flipBits: 0.01, lieNorm: 1e-30 });
    assert.throws(() => parseFaultPlan('flip_bits=2'), /flip_bits=2: expected a probability/);
    assert.throws(() => parseFaultPlan('lie_norm=x'), /lie_norm=x: expected a number/);
  });
});

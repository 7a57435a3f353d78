import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dequantizeRows, quantizeRows } from '../../src/model/quantize8.ts';

describe('int8 per-output-channel quantization', () => {
  const w = Float32Array.from([0.5, -1.27, 0.01, 0, 0, 0, 100, -3, 2]);

  it('keeps every weight within half a step of its row scale', () => {
    const q = quantizeRows(w, 3, 3);
    assert.deepEqual(Array.from(q.scales), [1.27 / 127, 0, 100 / 127].map(Math.fround));
    const back = dequantizeRows(q, false);
    for (let i = 0; i < 9; i++) {
      const scale = q.scales[Math.floor(i / 3)] as number;
      assert.ok(Math.abs((back[i] as number) - (w[i] as number)) <= scale / 2 + 1e-7, `element ${i}`);
    }
    assert.equal(q.values[1], -127);
    assert.equal(q.values[6], 127);
  });

  it('dequantizes to the transposed layout on request', () => {
    const q = quantizeRows(w, 3, 3);
    const a = dequantizeRows(q, false);
    const t = dequantizeRows(q, true);
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) assert.equal(t[c * 3 + r], a[r * 3 + c]);
  });
});

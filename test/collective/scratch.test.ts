import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { returnScratch, takeScratch } from '../../src/collective/scratch.ts';

describe('all-reduce scratch space', () => {
  it('hands a returned buffer out again for the same length, and never to two takers at once', () => {
    const a = takeScratch(1001);
    const b = takeScratch(1001);
    assert.notEqual(a, b);
    returnScratch([a]);
    assert.equal(takeScratch(1000).length, 1000, 'another length gets its own buffer');
    const again = takeScratch(1001);
    assert.equal(again, a);
    assert.notEqual(takeScratch(1001), a, 'taken: not handed out twice');
  });

  it('does not keep a view into someone else’s array', () => {
    const owner = new Float32Array(4096);
    returnScratch([owner.subarray(0, 2048)]);
    assert.notEqual(takeScratch(2048).buffer, owner.buffer);
  });
});

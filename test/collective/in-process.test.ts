import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AllReduceCancelledError, InProcessCollective } from '../../src/collective/index.ts';

// Values whose float32 sum depends on the order of additions: member order must decide it.
const x0 = Float32Array.of(1e8, 1);
const x1 = Float32Array.of(1, -1e8);
const x2 = Float32Array.of(-1e8, 1e8);
const inOrder = () => {
  const s = x0.slice();
  for (const x of [x1, x2]) for (let i = 0; i < s.length; i++) s[i]! += x[i]!;
  return s;
};

describe('in-process all-reduce', () => {
  it('gives every member and the observer the sum added in member order, bitwise', async () => {
    const c = new InProcessCollective('run');
    const members = ['a', 'b', 'c'];
    const observed = c.observe({ step: 0, generation: 1, members, length: 2 });
    // Contributions arrive out of member order.
    const got = await Promise.all([
      c.allReduceSum({ step: 0, generation: 1, members, self: 'c', data: x2 }),
      c.allReduceSum({ step: 0, generation: 1, members, self: 'a', data: x0 }),
      c.allReduceSum({ step: 0, generation: 1, members, self: 'b', data: x1 }),
      observed,
    ]);
    const want = Buffer.from(inOrder().buffer);
    for (const g of got) assert.equal(Buffer.compare(Buffer.from(g.buffer), want), 0);
    // Another order gives other bytes here, so the check above can fail.
    const other = x2.slice();
    for (const x of [x0, x1]) for (let i = 0; i < other.length; i++) other[i]! += x[i]!;
    assert.notEqual(Buffer.compare(Buffer.from(other.buffer), want), 0);
  });

  it("writes each member's sum into the buffer it passes, as allReduceSum does", async () => {
    const c = new InProcessCollective('run');
    const members = ['a', 'b', 'c'];
    const kept = members.map(() => Float32Array.of(Number.NaN, Number.NaN));
    const got = await Promise.all(
      [x0, x1, x2].map((data, i) =>
        c.allReduceSum({ step: 1, generation: 0, members, self: members[i]!, data, into: kept[i]! }),
      ),
    );
    const want = Buffer.from(inOrder().buffer);
    got.forEach((g, i) => {
      assert.equal(g, kept[i]);
      assert.equal(Buffer.compare(Buffer.from(g.buffer), want), 0);
    });
    // Refused at once, like a self that is not a member.
    assert.throws(
      () =>
        c.allReduceSum({ step: 2, generation: 0, members, self: 'a', data: x0, into: new Float32Array(3) }),
      /into holds 3 values; data has 2/,
    );
  });

  it('hands an observer that comes late the finished round', async () => {
    const c = new InProcessCollective('run');
    await c.allReduceSum({ step: 3, generation: 7, members: ['a'], self: 'a', data: x0 });
    assert.deepEqual(await c.observe({ step: 3, generation: 7, members: ['a'], length: 2 }), x0);
  });

  it('keeps generations apart and lets an aborted member leave its round', async () => {
    const c = new InProcessCollective('run');
    const abort = new AbortController();
    const left = c.allReduceSum({
      step: 0,
      generation: 1,
      members: ['a', 'b'],
      self: 'a',
      data: x0,
      signal: abort.signal,
    });
    abort.abort();
    await assert.rejects(left, AllReduceCancelledError);
    const retry = await Promise.all([
      c.allReduceSum({ step: 0, generation: 2, members: ['a', 'b'], self: 'a', data: x0 }),
      c.allReduceSum({ step: 0, generation: 2, members: ['a', 'b'], self: 'b', data: x1 }),
    ]);
    assert.deepEqual(retry[0], Float32Array.of(1e8 + 1, 1 - 1e8));
  });

  it('refuses a caller that is not a member', () => {
    const c = new InProcessCollective('run');
    assert.throws(
      () => c.allReduceSum({ step: 0, generation: 1, members: ['a'], self: 'z', data: x0 }),
      /self z is not a member/,
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StepLedger, workerId } from '../../src/coordinator/step-ledger.ts';

const a = workerId('worker-a');
const b = workerId('worker-b');

describe('step ledger', () => {
  it('completes when every micro-batch is reported by the worker that holds it', () => {
    const l = new StepLedger(3, [10, 11, 12]);
    assert.equal(l.assignNext(a), 10);
    assert.equal(l.assignNext(b), 11);
    assert.equal(l.assignNext(a), 12);
    assert.equal(l.assignNext(b), undefined);
    assert.ok(l.complete(a, 10, 5.0, 50));
    assert.ok(l.complete(b, 11, 2.0, 20));
    assert.ok(!l.isComplete);
    assert.ok(l.complete(a, 12, 1.0, 10));
    assert.ok(l.isComplete);
    assert.deepEqual(l.totals().tokens, 80);
    assert.deepEqual(l.contributors(), [a, b]);
    l.audit();
  });

  it('requeues what a lost worker held and what it had done, then finishes with the survivor', () => {
    const l = new StepLedger(0, [1, 2, 3, 4]);
    l.assignNext(a); // 1
    l.assignNext(b); // 2
    l.assignNext(a); // 3
    l.complete(a, 1, 1, 10);
    l.complete(b, 2, 1, 10);
    assert.deepEqual(l.releaseWorker(a), [1, 3]);
    assert.equal(l.pending, 3);
    for (let id = l.assignNext(b); id !== undefined; id = l.assignNext(b)) l.complete(b, id, 1, 10);
    assert.ok(l.isComplete);
    assert.deepEqual(l.contributors(), [b]);
    assert.equal(l.totals().tokens, 40);
    l.audit();
  });

  it('ignores a late report from a worker already declared lost', () => {
    const l = new StepLedger(0, [1]);
    l.assignNext(a);
    l.releaseWorker(a);
    l.assignNext(b);
    assert.equal(l.complete(a, 1, 9, 99), false);
    assert.ok(l.complete(b, 1, 1, 10));
    assert.equal(l.totals().tokens, 10);
    assert.equal(l.events.filter((e) => e.kind === 'ignored').length, 1);
    l.audit();
  });

  it('ignores a duplicate report and one for a micro-batch of another step', () => {
    const l = new StepLedger(0, [1]);
    l.assignNext(a);
    assert.ok(l.complete(a, 1, 1, 10));
    assert.equal(l.complete(a, 1, 1, 10), false);
    assert.equal(l.complete(a, 77, 1, 10), false);
    assert.equal(l.totals().tokens, 10);
  });

  it('puts back revoked micro-batches the worker still holds, and only those', () => {
    const l = new StepLedger(0, [1, 2, 3]);
    l.assignNext(a); // 1
    l.assignNext(a); // 2
    l.assignNext(b); // 3
    l.complete(a, 1, 1, 10);
    assert.deepEqual(l.revoke(a, [1, 2, 3]), [2]);
    assert.equal(l.assignNext(b), 2);
    l.complete(b, 2, 1, 10);
    l.complete(b, 3, 1, 10);
    assert.ok(l.isComplete);
    assert.deepEqual(Object.fromEntries(l.totals().byWorker), { 'worker-a': 1, 'worker-b': 2 });
    l.audit();
  });

  it('lists micro-batches held too long, by worker', () => {
    let t = 1000;
    const l = new StepLedger(0, [1, 2], () => t);
    l.assignNext(a);
    t = 5000;
    l.assignNext(b);
    t = 6000;
    assert.deepEqual([...l.overdue(3000)], [[a, [1]]]);
  });

  it('fails the audit when a micro-batch never completed', () => {
    const l = new StepLedger(0, [1, 2]);
    l.assignNext(a);
    l.complete(a, 1, 1, 1);
    assert.throws(() => l.audit(), /micro-batches 2 never completed/);
  });
});

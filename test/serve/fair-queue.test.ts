// The generation queue: one job at a time, clients take turns (the one served longest ago first),
// each client's own requests in order, a request whose client left before its turn never runs, and a
// full queue refuses at once. Jobs are promises the test resolves; no clocks, no sleeps.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CancelledWhileWaitingError, FairQueue, QueueFullError } from '../../src/serve/fair-queue.ts';

/** A job the test finishes by hand, recording when it started. */
function gate(log: string[], name: string) {
  let open: () => void = () => {};
  const done = new Promise<void>((r) => {
    open = r;
  });
  return {
    job: () => {
      log.push(name);
      return done.then(() => name);
    },
    finish: () => open(),
  };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('fair generation queue', () => {
  it('runs one job at a time, in turn between clients rather than in arrival order', async () => {
    const q = new FairQueue(10);
    const log: string[] = [];
    const signal = new AbortController().signal;
    const a1 = gate(log, 'a1');
    const a2 = gate(log, 'a2');
    const a3 = gate(log, 'a3');
    const b1 = gate(log, 'b1');
    const c1 = gate(log, 'c1');
    const all = [
      q.run('a', signal, a1.job),
      q.run('a', signal, a2.job),
      q.run('a', signal, a3.job),
      q.run('b', signal, b1.job),
      q.run('c', signal, c1.job),
    ];
    assert.deepEqual(log, ['a1']);
    assert.equal(q.waiting, 4);
    for (const g of [a1, b1, c1, a2, a3]) {
      g.finish();
      await tick();
    }
    assert.deepEqual(await Promise.all(all), ['a1', 'a2', 'a3', 'b1', 'c1']);
    // b and c, which had not been served, went before a's second and third requests.
    assert.deepEqual(log, ['a1', 'b1', 'c1', 'a2', 'a3']);
    assert.equal(q.running, false);
  });

  it('drops a waiting request whose client went away, and never runs it', async () => {
    const q = new FairQueue(10);
    const log: string[] = [];
    const first = gate(log, 'first');
    const gone = gate(log, 'gone');
    const p1 = q.run('a', new AbortController().signal, first.job);
    const leaver = new AbortController();
    const p2 = q.run('b', leaver.signal, gone.job);
    leaver.abort();
    await assert.rejects(p2, CancelledWhileWaitingError);
    assert.equal(q.waiting, 0);
    first.finish();
    await p1;
    await tick();
    assert.deepEqual(log, ['first']);
  });

  it('refuses at once when maxWaiting requests already wait', async () => {
    const q = new FairQueue(1);
    const log: string[] = [];
    const signal = new AbortController().signal;
    const running = gate(log, 'running');
    const waiting = gate(log, 'waiting');
    const p1 = q.run('a', signal, running.job);
    const p2 = q.run('b', signal, waiting.job);
    await assert.rejects(q.run('c', signal, gate(log, 'refused').job), QueueFullError);
    running.finish();
    await tick();
    waiting.finish();
    assert.deepEqual(await Promise.all([p1, p2]), ['running', 'waiting']);
    assert.deepEqual(log, ['running', 'waiting']);
  });

  it('goes on after a job fails', async () => {
    const q = new FairQueue(4);
    const signal = new AbortController().signal;
    const failed = q.run('a', signal, () => Promise.reject(new Error('boom')));
    const next = q.run('b', signal, () => Promise.resolve('ok'));
    await assert.rejects(failed, /boom/);
    assert.equal(await next, 'ok');
  });
});

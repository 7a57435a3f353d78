import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_CURVE_POINTS, MAX_WORKER_ROWS, RunStatus } from '../../src/coordinator/run-status.ts';
import type { EventFields, EventName } from '../../src/events/events.ts';
import type { TappedEvent } from '../../src/events/tap.ts';

// Only the fields the status page reads: the typed rest is left out on purpose.
const at = (event: EventName, fields: EventFields, level: TappedEvent['level'] = 'info'): TappedEvent =>
  ({
    time: Date.UTC(2026, 0, 1),
    level,
    event,
    msg: `${event} message`,
    fields,
  }) as TappedEvent;

function statusOf(events: readonly TappedEvent[], now = 10_000): RunStatus {
  const s = new RunStatus(() => now);
  s.begin({ runId: 'r1', startStep: 0, totalSteps: 10 });
  for (const e of events) s.record(e);
  return s;
}

describe('run status (the status page data)', () => {
  it('follows the committed steps: step, loss curve, throughput, ETA, micro-batches per worker', () => {
    const s = statusOf([
      at('worker_joined', { worker: 'w0', backend: 'tensorflow' }),
      at('step_committed', {
        step: 1,
        loss: 2.5,
        tokens_per_second: 100,
        eta_seconds: 90,
        micro_batches: { w0: 3, w1: 1 },
      }),
      at('step_committed', {
        step: 2,
        loss: 2.4,
        tokens_per_second: 110,
        eta_seconds: 80,
        micro_batches: { w0: 2, w1: 2 },
      }),
      at('eval_done', { step: 2, eval_loss: 2.6 }),
    ]);
    const snap = s.snapshot([{ id: 'w0', phase: 'synced', lastSeen: 9_500 }], 'step 2: 4 pending');
    assert.equal(snap.step, 2);
    assert.equal(snap.loss, 2.4);
    assert.equal(snap.eval_loss, 2.6);
    assert.equal(snap.tokens_per_second, 110);
    assert.equal(snap.eta_seconds, 80);
    assert.deepEqual(snap.loss_curve, [
      [1, 2.5],
      [2, 2.4],
    ]);
    assert.deepEqual(snap.eval_curve, [[2, 2.6]]);
    assert.deepEqual(snap.workers, [
      { id: 'w0', backend: 'tensorflow', state: 'synced', micro_batches: 5, last_seen_ms_ago: 500 },
      { id: 'w1', backend: 'unknown', state: 'left', micro_batches: 3, last_seen_ms_ago: null },
    ]);
  });

  it('keeps a lost worker as lost, lists events newest first without step lines or debug', () => {
    const s = statusOf([
      at('worker_joined', { worker: 'w0', backend: 'wasm' }),
      at('step_committed', { step: 1, loss: 2, micro_batches: { w0: 1 } }),
      at('ledger_audit', { step: 1 }, 'debug'),
      at('worker_lost', { worker: 'w0' }, 'warn'),
    ]);
    const snap = s.snapshot([], 'paused');
    assert.equal(snap.workers[0]?.state, 'lost');
    assert.deepEqual(
      snap.events.map((e) => [e.event, e.level]),
      [
        ['worker_lost', 'warn'],
        ['worker_joined', 'info'],
      ],
    );
  });

  it('lists every worker, in id order, up to MAX_WORKER_ROWS, and counts them', () => {
    const ids = Array.from({ length: MAX_WORKER_ROWS }, (_, i) => `w${String(i).padStart(3, '0')}`);
    const s = statusOf(ids.map((worker) => at('worker_joined', { worker, backend: 'synthetic' })));
    const snap = s.snapshot(
      ids.map((id) => ({ id, phase: 'synced' as const, lastSeen: 9_000 })),
      'step 0',
    );
    assert.deepEqual(
      snap.workers.map((w) => w.id),
      ids,
    );
    assert.equal(snap.worker_summary.total, MAX_WORKER_ROWS);
    assert.equal(snap.worker_summary.shown, MAX_WORKER_ROWS);
    assert.equal(snap.worker_summary.by_state.synced, MAX_WORKER_ROWS);
  });

  it('past MAX_WORKER_ROWS lists those that need a look first and summarizes all: 256 workers stay one page', () => {
    const n = 256;
    const ids = Array.from({ length: n }, (_, i) => `w${String(i).padStart(3, '0')}`);
    // Each worker counted 10 micro-batches, except w200 (2: the slowest) and w050 (lost).
    const split = Object.fromEntries(ids.map((id) => [id, id === 'w200' ? 2 : 10]));
    const s = statusOf([
      ...ids.map((worker) => at('worker_joined', { worker, backend: 'synthetic' })),
      at('step_committed', { step: 1, loss: 2, micro_batches: split }),
      at('worker_lost', { worker: 'w050' }, 'warn'),
    ]);
    const live = ids
      .filter((id) => id !== 'w050')
      .map((id) => ({
        id,
        // w100 has been silent longest; w007 is still loading its model.
        phase: id === 'w007' ? ('loading' as const) : ('synced' as const),
        lastSeen: id === 'w100' ? 1_000 : 9_900,
      }));
    const snap = s.snapshot(live, 'step 1');
    assert.equal(snap.workers.length, MAX_WORKER_ROWS);
    assert.deepEqual(
      snap.workers.slice(0, 4).map((w) => [w.id, w.state]),
      [
        ['w050', 'lost'],
        ['w007', 'loading'],
        ['w100', 'synced'],
        ['w200', 'synced'],
      ],
    );
    assert.deepEqual(snap.worker_summary.by_state, { loading: 1, ready: 0, synced: 254, lost: 1, left: 0 });
    assert.equal(snap.worker_summary.total, n);
    assert.equal(snap.worker_summary.shown, MAX_WORKER_ROWS);
    assert.deepEqual(snap.worker_summary.micro_batches, { min: 2, median: 10, max: 10 });
    // The page's size does not grow with the cluster: 256 workers cost what 24 do, give or take.
    const small = statusOf(ids.slice(0, MAX_WORKER_ROWS).map((worker) => at('worker_joined', { worker })));
    const smallBytes = JSON.stringify(small.snapshot([], 'x')).length;
    assert.ok(
      JSON.stringify(snap).length < 2 * smallBytes,
      `${JSON.stringify(snap).length} vs ${smallBytes}`,
    );
  });

  it('thins a long loss curve, keeping its first and latest points', () => {
    const steps = MAX_CURVE_POINTS * 3;
    const s = statusOf(
      Array.from({ length: steps }, (_, i) => at('step_committed', { step: i + 1, loss: 1 / (i + 1) })),
    );
    const curve = s.snapshot([], '').loss_curve;
    assert.ok(curve.length <= MAX_CURVE_POINTS && curve.length > MAX_CURVE_POINTS / 2, `${curve.length}`);
    assert.deepEqual(curve[0], [1, 1]);
    assert.deepEqual(curve.at(-1), [steps, 1 / steps]);
    for (let i = 1; i < curve.length; i++) assert.ok(curve[i]![0] > curve[i - 1]![0], 'steps ascend');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_CURVE_POINTS, RunStatus } from '../../src/coordinator/run-status.ts';
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

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PhaseClock, type StepPhase } from '../../src/metrics/phase-clock.ts';

function clockAt() {
  let t = 1000;
  const booked = new Map<StepPhase, number>();
  const clock = new PhaseClock(
    (phase, seconds) => booked.set(phase, (booked.get(phase) ?? 0) + seconds),
    () => t,
  );
  return { clock, booked, advance: (ms: number) => (t += ms) };
}

describe('step phase clock', () => {
  it('books each stretch of time to the phase the worker was in, starting idle', () => {
    const { clock, booked, advance } = clockAt();
    advance(500);
    clock.enter('compute');
    advance(2000);
    clock.enter('wait');
    advance(250);
    clock.enter('allreduce');
    advance(100);
    clock.enter('commit');
    advance(50);
    clock.enter('idle');
    assert.deepEqual(Object.fromEntries(booked), {
      idle: 0.5,
      compute: 2,
      wait: 0.25,
      allreduce: 0.1,
      commit: 0.05,
    });
  });

  it('books the time in the current phase at a flush (a scrape) without leaving it', () => {
    const { clock, booked, advance } = clockAt();
    clock.enter('compute');
    advance(3000);
    clock.flush();
    assert.equal(booked.get('compute'), 3);
    assert.equal(clock.phase, 'compute');
    advance(1000);
    clock.enter('wait');
    assert.equal(booked.get('compute'), 4, 'no second counted twice');
  });

  it('accounts for all the time that passed, whatever the order of phases', () => {
    const { clock, booked, advance } = clockAt();
    const phases: StepPhase[] = [
      'compute',
      'wait',
      'compute',
      'allreduce',
      'wait',
      'allreduce',
      'commit',
      'idle',
    ];
    for (const [i, p] of phases.entries()) {
      advance(37 * (i + 1));
      clock.enter(p);
    }
    advance(11);
    clock.flush();
    const total = [...booked.values()].reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - (37 * 36 + 11) / 1000) < 1e-9, `${total}`);
  });
});

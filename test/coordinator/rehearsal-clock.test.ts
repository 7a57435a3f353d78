import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RehearsalClock, type StepTimes } from '../../src/coordinator/rehearsal-clock.ts';
import { plannedRun, summarizeRehearsal } from '../../src/coordinator/rehearsal-summary.ts';
import type { EventName } from '../../src/events/events.ts';
import type { TappedEvent } from '../../src/events/tap.ts';

/** A coordinator event at `time` ms, as the tap hands it over. */
const at = (time: number, event: EventName, fields: Record<string, unknown>): TappedEvent =>
  ({ time, level: 'debug', event, msg: '', fields }) as TappedEvent;
const dealt = (time: number, step: number, ids: number[], kind = 'train') =>
  at(time, 'microbatches_dealt', { step, kind, micro_batches: ids });
const done = (time: number, step: number, worker: string, id: number) =>
  at(time, 'microbatch_completed', { step, worker, micro_batch: id });
const reduce = (time: number, step: number, members: string[]) =>
  at(time, 'reduce_started', { step, generation: 1, members });
const agreed = (time: number, step: number) => at(time, 'reduce_agreed', { step, generation: 1 });

function play(events: TappedEvent[], end: number): readonly StepTimes[] {
  const c = new RehearsalClock();
  for (const e of events) c.record(e);
  c.finish(end);
  return c.steps;
}

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

describe('rehearsal clock', () => {
  it('splits a step into compute, wait, all-reduce and commit that add up to its wall time', () => {
    // a computes 0 and 2 back to back (queued), b computes 1 and then waits for a.
    const [s] = play(
      [
        dealt(1000, 0, [0, 1, 2]),
        done(1300, 0, 'b', 1),
        done(1400, 0, 'a', 0),
        done(1800, 0, 'a', 2),
        reduce(1800, 0, ['a', 'b']),
        agreed(1900, 0),
        at(1950, 'step_committed', { step: 1 }),
      ],
      2000,
    );
    assert.ok(s);
    // busy a = 400 + 400 (2 waited in a's queue), busy b = 300: compute = mean = 550 ms of 800.
    close(s.computeSeconds, 0.55);
    close(s.waitSeconds, 0.25);
    close(s.allReduceSeconds, 0.1);
    close(s.commitSeconds, 0.1);
    close(s.evalSeconds, 0);
    close(s.totalSeconds, 1);
    close(
      s.computeSeconds + s.waitSeconds + s.allReduceSeconds + s.commitSeconds + s.evalSeconds,
      s.totalSeconds,
    );
    assert.equal(s.workers, 2);
  });

  it('counts a member that computed nothing as waiting, and a lost worker not at all', () => {
    const [s] = play(
      [
        dealt(0, 3, [7, 8]),
        done(100, 3, 'lost', 7),
        at(150, 'microbatches_requeued', { step: 3, worker: 'lost', micro_batches: [7] }),
        dealt(150, 3, [7]),
        done(200, 3, 'a', 8),
        done(400, 3, 'a', 7),
        reduce(400, 3, ['a', 'idle']),
        agreed(500, 3),
      ],
      600,
    );
    // a: 200 (8 from 0) + 200 (7 from its last report): 400; idle: 0; compute = 200 of 400 train.
    close(s!.computeSeconds, 0.2);
    close(s!.waitSeconds, 0.2);
    close(s!.allReduceSeconds, 0.1);
  });

  it('books an aborted all-reduce and its retry as wait, evaluation on its own, and the checkpoint as commit', () => {
    const steps = play(
      [
        dealt(0, 0, [1]),
        done(100, 0, 'a', 1),
        reduce(100, 0, ['a']),
        at(150, 'reduce_aborted', { step: 0, generation: 1 }),
        reduce(350, 0, ['a']),
        agreed(400, 0),
        dealt(450, 0, [90], 'eval'),
        done(500, 0, 'a', 90),
        at(650, 'eval_done', { step: 1 }),
        dealt(700, 1, [2]),
        done(800, 1, 'a', 2),
        reduce(800, 1, ['a']),
        agreed(850, 1),
      ],
      900,
    );
    assert.equal(steps.length, 2);
    const [first, second] = steps;
    close(first!.computeSeconds, 0.1);
    close(first!.waitSeconds, 0.2); // the retry's backoff, between abort and the new round
    close(first!.allReduceSeconds, 0.1);
    close(first!.evalSeconds, 0.2);
    close(first!.commitSeconds, 0.1); // 400-450 and 650-700
    close(first!.totalSeconds, 0.7);
    close(second!.totalSeconds, 0.2);
  });

  it('leaves out a step the run stopped in before its all-reduce agreed', () => {
    const steps = play(
      [
        dealt(0, 0, [1]),
        done(100, 0, 'a', 1),
        reduce(100, 0, ['a']),
        agreed(200, 0),
        dealt(300, 1, [2]),
        done(400, 1, 'a', 2),
        reduce(400, 1, ['a']),
      ],
      900,
    );
    assert.deepEqual(
      steps.map((s) => [s.step, s.totalSeconds]),
      [[0, 0.3]],
    );
  });

  it('predicts from the steps after the first and gives GPU-hours by its formula', () => {
    const step = (n: number, compute: number, evalSeconds = 0): StepTimes => ({
      step: n,
      computeSeconds: compute,
      waitSeconds: 0.5,
      allReduceSeconds: 0.25,
      commitSeconds: 0.25,
      evalSeconds,
      totalSeconds: compute + 1 + evalSeconds,
      workers: 8,
    });
    const plan = { numEpochs: 3, stepsPerEpoch: 100, evalSteps: 200, evalMicroBatches: 4 };
    const r = summarizeRehearsal([step(0, 10), step(1, 2), step(2, 4, 30)], plan);
    assert.deepEqual(r.predictedFrom, [1, 2]);
    close(r.predicted.stepSeconds, 3 + 1);
    close(r.predicted.evalSeconds, 30);
    // 300 steps; evaluations after 200 and at the end (300).
    assert.deepEqual(plannedRun(plan), { steps: 300, evals: 2 });
    close(r.gpuHours, (8 * (300 * 4 + 2 * 30)) / 3600);
    assert.deepEqual(plannedRun({ ...plan, numEpochs: 0.5, evalMicroBatches: 0 }), { steps: 50, evals: 0 });
  });
});

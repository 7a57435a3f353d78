import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerLink } from '../../src/coordinator/members.ts';
import { workerId } from '../../src/coordinator/step-ledger.ts';
import { type CoordinatorMessage, MicroBatchKind } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { finalizeGradient } from '../../src/train/replica.ts';
import { recordEvents } from '../support/recorded-events.ts';
import { testDriver } from '../support/test-driver.ts';

// A worker that becomes a replica after a step's dealing began is used from the next step (issue
// #21): it is synced and joins that step's all-reduce (its replica must take the step's update),
// but is dealt nothing of it, unless the step could not finish without it. Steps 0 and 1 deal
// micro-batches [10, 11] and [20, 21]; --min_workers 1.

function cluster() {
  const recorded = recordEvents();
  const { driver, replica, rounds, commits } = testDriver(recorded.events);
  const inbox = new Map<string, CoordinatorMessage[]>();
  const join = (name: string, credits: number) => {
    const sent: CoordinatorMessage[] = [];
    inbox.set(name, sent);
    const link: WorkerLink = {
      id: workerId(name),
      send: (m) => sent.push(m),
      close: () => {},
      drop: () => {},
    };
    driver.join(link);
    driver.onReady(link.id, 'fp');
    driver.onCredit(link.id, credits);
  };
  /** The micro-batches `name` was dealt, as (step, id). */
  const dealt = (name: string) =>
    (inbox.get(name) ?? []).flatMap((m) =>
      m.body?.$case === 'microBatch' ? [[m.body.value.step, m.body.value.id]] : [],
    );
  const members = (name: string) =>
    (inbox.get(name) ?? []).flatMap((m) => (m.body?.$case === 'reduceStart' ? [m.body.value.members] : []));
  const report = (name: string, step: number, id: number) =>
    driver.onResult(workerId(name), {
      id,
      step,
      kind: MicroBatchKind.MICRO_BATCH_KIND_TRAIN,
      lossSum: 1,
      supervisedTokens: 1,
      gradNorm: 1,
    });
  const synced = (name: string) =>
    recorded.records.find((r) => r.name === 'worker_synced' && r.fields.worker === name)?.fields;
  return { driver, replica, rounds, commits, join, dealt, members, report, synced };
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('a worker that joins mid-step', () => {
  it('is synced at once, joins the step all-reduce, and is dealt micro-batches from the next step', async () => {
    const c = cluster();
    c.join('w0', 1);
    assert.deepEqual(c.dealt('w0'), [[0, 10]]);
    c.join('w1', 2); // step 0 has begun
    assert.deepEqual(c.synced('w1'), { worker: 'w1', step: 0, deal_from: 1 });
    assert.deepEqual(c.dealt('w1'), [], 'nothing of step 0 while it waits');
    c.report('w0', 0, 10);
    c.report('w0', 0, 11);
    assert.deepEqual(c.dealt('w0'), [
      [0, 10],
      [0, 11],
    ]);
    assert.deepEqual(c.dealt('w1'), []);
    assert.deepEqual(c.members('w1'), [['w0', 'w1']], "a member of step 0's all-reduce");

    const sum = () => Float32Array.of(0.5, -0.5, 0.25, 0);
    const final = finalizeGradient(sum(), 2, 1); // normalises in place: its own copy
    const before = c.replica.checksum();
    c.rounds[0]!.resolve(sum());
    await tick();
    for (const w of ['w0', 'w1'])
      c.driver.onReduceResult(workerId(w), {
        step: 0,
        generation: c.rounds[0]!.generation,
        checksum: final.checksum,
        gradNorm: final.norm,
        stateChecksum: before,
        error: '',
        blame: '',
        contributions: [],
      });
    await tick(10);
    assert.deepEqual(c.commits, [0]);
    assert.deepEqual(c.dealt('w1'), [[1, 21]], 'dealt from step 1 (one per worker per round, w0 first)');
    assert.deepEqual(c.synced('w0'), { worker: 'w0', step: 0, deal_from: 0 });
  });

  it('is dealt the current step when the step could not finish without it', () => {
    const c = cluster();
    c.join('w0', 1);
    c.join('w1', 2);
    assert.deepEqual(c.dealt('w1'), []);
    c.driver.lose(workerId('w0'), 'test: killed');
    assert.deepEqual(c.dealt('w1'), [
      [0, 10],
      [0, 11],
    ]);
  });

  it('is used in the step when it joins before the step dealt anything', () => {
    const c = cluster();
    c.join('w1', 2);
    assert.deepEqual(c.synced('w1'), { worker: 'w1', step: 0, deal_from: 0 });
    assert.deepEqual(c.dealt('w1'), [
      [0, 10],
      [0, 11],
    ]);
  });
});

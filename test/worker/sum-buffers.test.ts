import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InProcessCollective } from '../../src/collective/index.ts';
import { silentEvents } from '../../src/events/events.ts';
import {
  floatBytes,
  reduceStartMessage,
  stateSyncMessage,
  stepCommitMessage,
} from '../../src/protocol/messages.ts';
import type { WorkerMessage } from '../../src/protocol/wire.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';
import type { MicroBatchCompute } from '../../src/worker/model-compute.ts';
import { ReplicaWorker } from '../../src/worker/replica-worker.ts';
import { testRunConfig } from '../support/run-config.ts';

// A worker writes each round's sum into buffers it keeps (no gradient-sized array per round). A
// round that fails after writing part of its sum (a timeout halfway) must not touch the reduced
// gradient of an earlier round that a StepCommit may still apply.

const layout = paramLayout([{ name: 'a', shape: [3] }]);
const run = testRunConfig('run-sums');
const notDealt: MicroBatchCompute = {
  setAdapter() {},
  train: () => Promise.reject(new Error('no micro-batch is dealt in this test')),
  evaluate: () => Promise.reject(new Error('no micro-batch is dealt in this test')),
};

/** A synced worker whose round of generation `failing` writes NaN over its whole sum buffer, then fails. */
function worker(failing?: number) {
  const sent: WorkerMessage[] = [];
  const buffers: Float32Array[] = [];
  const collective = new InProcessCollective(run.runId);
  const w = new ReplicaWorker({
    id: 'w0',
    run,
    layout,
    compute: notDealt,
    maxInFlight: 1,
    send: (m) => sent.push(m),
    reduce: async (r) => {
      buffers.push(r.into);
      if (r.generation === failing) {
        r.into.fill(Number.NaN);
        throw new Error(`round of generation ${failing} timed out halfway`);
      }
      return collective.allReduceSum({ ...r, self: 'w0' });
    },
    events: silentEvents,
    onFatal: (err) => assert.fail(err),
  });
  const coordinator = new AdapterReplica(layout, Float32Array.of(0.5, -0.5, 0.25));
  const s = coordinator.state;
  w.handle(
    stateSyncMessage({
      step: 0,
      optimizerSteps: s.step,
      names: ['a'],
      params: floatBytes(s.params),
      expAvg: floatBytes(s.expAvg),
      expAvgSq: floatBytes(s.expAvgSq),
      checksum: coordinator.checksum(),
    }),
  );
  return { w, sent, buffers };
}

const start = (generation: number) =>
  reduceStartMessage({
    step: 0,
    generation,
    members: ['w0'],
    observers: [],
    totalSupervisedTokens: 1,
    algorithm: 'shard-owner',
    nodes: [],
  });

async function answers(sent: WorkerMessage[], n: number) {
  const isAnswer = (m: WorkerMessage) => m.body?.$case === 'reduceResult';
  for (let i = 0; i < 100 && sent.filter(isAnswer).length < n; i++) {
    await new Promise((r) => setImmediate(r));
  }
  return sent.filter(isAnswer).map((m) => (m.body?.$case === 'reduceResult' ? m.body.value : undefined));
}

describe("a worker's sum buffers", () => {
  it('keep a reduced, uncommitted gradient intact when a later round fails after writing', async () => {
    const reference = worker();
    reference.w.handle(start(1));
    assert.equal((await answers(reference.sent, 1))[0]?.error, '');
    reference.w.handle(stepCommitMessage(0, 1, 1e-2, 1));

    const retried = worker(2);
    retried.w.handle(start(1));
    assert.equal((await answers(retried.sent, 1))[0]?.error, '');
    retried.w.handle(start(2));
    const [, failed] = await answers(retried.sent, 2);
    assert.match(failed?.error ?? '', /generation 2 timed out halfway/);
    assert.notEqual(retried.buffers[1], retried.buffers[0], 'the failed round wrote over the pending sum');
    // The coordinator commits the generation that completed everywhere.
    retried.w.handle(stepCommitMessage(0, 1, 1e-2, 1));
    const got = retried.w.state!.params;
    assert.ok(got.every(Number.isFinite), `params ${got}`);
    assert.deepEqual(Array.from(got), Array.from(reference.w.state!.params));
  });

  it('reuse the same buffer round after round once each is committed', async () => {
    const { w, sent, buffers } = worker();
    for (const step of [0, 1]) {
      w.handle(
        reduceStartMessage({
          step,
          generation: 1,
          members: ['w0'],
          observers: [],
          totalSupervisedTokens: 1,
          algorithm: 'shard-owner',
          nodes: [],
        }),
      );
      assert.equal((await answers(sent, step + 1))[step]?.error, '');
      w.handle(stepCommitMessage(step, 1, 1e-2, 1));
    }
    assert.equal(buffers.length, 2);
    assert.equal(buffers[1], buffers[0], 'a committed round left its buffer for the next');
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { attachInProcessWorker } from '../../src/cli/in-process-worker.ts';
import { InProcessCollective } from '../../src/collective/index.ts';
import { startCoordinatorServer } from '../../src/coordinator/grpc-server.ts';
import { StepDriver, type StepDriverOptions } from '../../src/coordinator/step-driver.ts';
import { silentEvents } from '../../src/events/events.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';
import type { MicroBatchCompute } from '../../src/worker/model-compute.ts';
import { runWorkerSession } from '../../src/worker/session.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { recordEvents } from '../support/recorded-events.ts';
import { testRunConfig } from '../support/run-config.ts';
import { mb } from '../support/test-driver.ts';

// A compute that throws (a device error, an out-of-memory) must end the worker's session with an
// error naming the micro-batch — not become an unhandled rejection with the worker still "alive".

const layout = paramLayout([{ name: 'a', shape: [2] }]);
const run = testRunConfig('run-f');
const failing: MicroBatchCompute = {
  setAdapter() {},
  train: async () => {
    throw new Error('device out of memory');
  },
  evaluate: async () => ({ lossSum: 1, tokens: 1 }),
};
const driverOptions = (events = silentEvents): StepDriverOptions => ({
  runId: run.runId,
  modelFingerprint: 'fp',
  totalSteps: 1,
  minWorkers: 1,
  maxGradNorm: 1,
  evalSteps: 10,
  replica: new AdapterReplica(layout, Float32Array.of(0.5, 0.5)),
  microBatches: () => [mb(1)],
  evalMicroBatches: [],
  learningRate: () => 0.01,
  observerId: 'coordinator',
  algorithm: 'shard-owner',
  observeReduce: () => new Promise(() => {}),
  onCommit: async () => {},
  onEval: async () => {},
  afterStep: async () => {},
  events,
});

describe('a micro-batch whose compute throws', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    process.on('unhandledRejection', onUnhandled);
  });
  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    await nc?.close();
    await nats?.stop();
  });

  it('ends a worker session with an error naming the micro-batch; the coordinator loses the worker', async () => {
    const recorded = recordEvents();
    const driver = new StepDriver(driverOptions(recorded.events));
    const server = await startCoordinatorServer({
      listen: '127.0.0.1:0',
      driver,
      runId: run.runId,
      runConfigJson: JSON.stringify(run),
      modelFingerprint: 'fp',
      heartbeatIntervalMs: 500,
      security: { kind: 'insecure' },
      heartbeatTimeoutMs: 10_000,
      events: recorded.events,
    });
    try {
      await assert.rejects(
        runWorkerSession({
          coordinator: `127.0.0.1:${server.port}`,
          security: { kind: 'insecure' },
          workerId: 'w0',
          backend: 'test',
          maxInFlight: 1,
          nc,
          events: silentEvents,
          prepare: async () => ({ compute: failing, layout, fingerprint: 'fp' }),
        }),
        /computing micro-batch 1 of step 0 failed: device out of memory/,
      );
      // The stream's end reaches the coordinator: the worker is lost and its micro-batch requeued.
      for (let i = 0; i < 100 && !recorded.records.some((r) => r.name === 'worker_lost'); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const lost = recorded.records.find((r) => r.name === 'worker_lost');
      assert.equal(lost?.fields.worker, 'w0');
      assert.ok(recorded.records.some((r) => r.name === 'microbatches_requeued'));
      assert.deepEqual(unhandled, []);
    } finally {
      await server.close();
    }
  });

  it('fails an in-process (finetune) run with the same error', async () => {
    const driver = new StepDriver(driverOptions());
    attachInProcessWorker(driver, {
      id: 'local',
      run,
      layout,
      compute: failing,
      modelFingerprint: 'fp',
      collective: new InProcessCollective(run.runId),
      events: silentEvents,
    });
    await assert.rejects(driver.done, /computing micro-batch 1 of step 0 failed: device out of memory/);
    assert.deepEqual(unhandled, []);
  });
});

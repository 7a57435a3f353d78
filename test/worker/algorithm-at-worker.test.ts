import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InProcessCollective } from '../../src/collective/index.ts';
import { silentEvents } from '../../src/events/events.ts';
import { floatBytes, reduceStartMessage, stateSyncMessage } from '../../src/protocol/messages.ts';
import type { WorkerMessage } from '../../src/protocol/wire.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';
import { parseRunConfig } from '../../src/train/run-config.ts';
import type { MicroBatchCompute } from '../../src/worker/model-compute.ts';
import { ReplicaWorker } from '../../src/worker/replica-worker.ts';
import { testRunConfig } from '../support/run-config.ts';

// The all-reduce algorithm at a worker's edge. The Welcome's run config names the run's algorithm
// and a ReduceStart the round's; a worker runs that one or none (an unknown name is refused, naming
// the known ones), never another the other members would not meet in.

const layout = paramLayout([{ name: 'a', shape: [2] }]);
const run = testRunConfig('run-r');
const notDealt: MicroBatchCompute = {
  setAdapter() {},
  train: () => Promise.reject(new Error('no micro-batch is dealt in this test')),
  evaluate: () => Promise.reject(new Error('no micro-batch is dealt in this test')),
};

function syncedWorker() {
  const sent: WorkerMessage[] = [];
  const algorithms: string[] = [];
  const nodes: (readonly string[] | undefined)[] = [];
  const collective = new InProcessCollective(run.runId);
  const worker = new ReplicaWorker({
    id: 'w0',
    run,
    layout,
    compute: notDealt,
    maxInFlight: 1,
    send: (m) => sent.push(m),
    reduce: (r) => {
      algorithms.push(r.algorithm);
      nodes.push(r.nodes);
      return collective.allReduceSum({ ...r, self: 'w0' });
    },
    events: silentEvents,
    onFatal: (err) => assert.fail(err),
  });
  const coordinator = new AdapterReplica(layout, Float32Array.of(0.5, -0.5));
  const s = coordinator.state;
  worker.handle(
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
  return { worker, sent, algorithms, nodes };
}

const start = (algorithm: string, nodes: string[] = []) =>
  reduceStartMessage({
    step: 0,
    generation: 1,
    members: ['w0'],
    observers: [],
    totalSupervisedTokens: 1,
    algorithm,
    nodes,
  });

async function reduceAnswer(sent: WorkerMessage[]) {
  for (let i = 0; i < 100 && !sent.some((m) => m.body?.$case === 'reduceResult'); i++) {
    await new Promise((r) => setImmediate(r));
  }
  const body = sent.find((m) => m.body?.$case === 'reduceResult')?.body;
  assert.equal(body?.$case, 'reduceResult', 'the worker answered the round');
  return body.value;
}

describe('a ReduceStart at a worker', () => {
  for (const algorithm of ['shard-owner', 'ring', 'hierarchical']) {
    it(`runs the round with the algorithm it names (${algorithm})`, async () => {
      const { worker, sent, algorithms } = syncedWorker();
      worker.handle(start(algorithm));
      const answer = await reduceAnswer(sent);
      assert.equal(answer.error, '');
      assert.notEqual(answer.checksum, '');
      assert.deepEqual(algorithms, [algorithm]);
    });
  }

  it("hands the round's node names to the all-reduce when there is one per member, else none", async () => {
    const named = syncedWorker();
    named.worker.handle(start('hierarchical', ['gpu-node-7.example']));
    assert.equal((await reduceAnswer(named.sent)).error, '');
    assert.deepEqual(named.nodes, [['gpu-node-7.example']]);
    // From a coordinator that names no nodes: the all-reduce gets none (one node), not a short list.
    const unnamed = syncedWorker();
    unnamed.worker.handle(start('hierarchical'));
    assert.equal((await reduceAnswer(unnamed.sent)).error, '');
    assert.deepEqual(unnamed.nodes, [undefined]);
  });

  for (const algorithm of ['tree', '', 'Ring', 'toString']) {
    it(`answers a round naming ${JSON.stringify(algorithm)} as failed, naming the known algorithms, and runs none`, async () => {
      const { worker, sent, algorithms } = syncedWorker();
      worker.handle(start(algorithm));
      const answer = await reduceAnswer(sent);
      assert.equal(
        answer.error,
        `ReduceStart: algorithm ${JSON.stringify(algorithm)} is not an all-reduce algorithm: use one of shard-owner, ring, hierarchical`,
      );
      assert.equal(answer.checksum, '');
      assert.deepEqual(algorithms, [], 'no all-reduce ran');
    });
  }
});

describe("a Welcome's run config at a worker", () => {
  it('keeps every registered algorithm through the JSON trip', () => {
    for (const algorithm of ['shard-owner', 'ring', 'hierarchical'] as const) {
      assert.equal(
        parseRunConfig(JSON.stringify({ ...run, allReduceAlgorithm: algorithm })).allReduceAlgorithm,
        algorithm,
      );
    }
  });

  it('refuses an algorithm the registry does not hold, naming the known ones', () => {
    for (const algorithm of ['tree', '', 'constructor', null, 3]) {
      assert.throws(
        () => parseRunConfig(JSON.stringify({ ...run, allReduceAlgorithm: algorithm })),
        new Error(
          `run config: "allReduceAlgorithm" ${JSON.stringify(algorithm)} is not an all-reduce algorithm: use one of shard-owner, ring, hierarchical`,
        ),
      );
    }
  });
});

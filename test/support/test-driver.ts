// A real StepDriver for unit tests that play the workers and the collective by hand: a 4-value
// adapter, 2 steps of micro-batches [10, 11] and [20, 21] (one supervised token each), and an
// all-reduce whose rounds the test resolves or rejects itself.
import { StepDriver, type StepDriverOptions } from '../../src/coordinator/step-driver.ts';
import type { MicroBatch } from '../../src/data/micro-batch.ts';
import type { Events } from '../../src/events/events.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';

export const mb = (id: number): MicroBatch => ({
  id,
  step: 0,
  rows: 1,
  seqLen: 2,
  inputIds: Int32Array.of(1, 2),
  labels: Int32Array.of(-100, 2),
  attentionMask: Int32Array.of(1, 1),
});

export interface ObservedRound {
  readonly generation: number;
  resolve(sum: Float32Array): void;
  reject(e: Error): void;
}

/** `extra`: options of the product's driver the test sets itself (frame rules, the observer's key). */
export function testDriver(events: Events, runId = 'run-a', extra: Partial<StepDriverOptions> = {}) {
  const replica = new AdapterReplica(
    paramLayout([{ name: 'a', shape: [4] }]),
    Float32Array.of(0.1, 0.2, 0.3, 0.4),
  );
  const rounds: ObservedRound[] = [];
  const commits: number[] = [];
  const driver = new StepDriver({
    runId,
    modelFingerprint: 'fp',
    totalSteps: 2,
    minWorkers: 1,
    maxGradNorm: 1,
    evalSteps: 100,
    replica,
    microBatches: (step) => (step === 0 ? [mb(10), mb(11)] : [mb(20), mb(21)]),
    evalMicroBatches: [],
    learningRate: () => 1e-2,
    observerId: 'coordinator',
    algorithm: 'shard-owner',
    observeReduce: (_step, generation) =>
      new Promise((resolve, reject) => rounds.push({ generation, resolve, reject })),
    onCommit: async (c) => {
      commits.push(c.step);
    },
    onEval: async () => {},
    afterStep: async () => {},
    events,
    ...extra,
  });
  return { driver, replica, rounds, commits };
}

// Measures a worker where the work happens, from outside ReplicaWorker (as fault-injection.ts
// wraps it): the compute of each micro-batch (seconds, input tokens, model FLOPs), the all-reduce
// call, and the coordinator's commit and abort messages, which move the worker between step phases.
import type { RoundReport } from '../collective/index.ts';
import type { MicroBatch } from '../data/micro-batch.ts';
import type { ComputedMicroBatch, StepPhase } from '../metrics/worker-metrics.ts';
import { type FlopsModel, forwardFlops, trainStepFlops } from '../model/flops.ts';
import type { CoordinatorMessage } from '../protocol/wire.ts';
import type { MicroBatchCompute } from './model-compute.ts';
import type { ReduceFn } from './replica-worker.ts';

/** What the measurements go to (the worker's Prometheus metrics, src/metrics/worker-metrics.ts). */
export interface WorkerObserver {
  computed(mb: ComputedMicroBatch): void;
  enterPhase(phase: StepPhase): void;
  stepCommitted(): void;
  /** The coordinator welcomed this worker into run `runId`. */
  joinedRun(runId: string): void;
  readonly allReduce: { record(r: RoundReport): void };
}

export interface Instrumented {
  readonly compute: MicroBatchCompute;
  readonly reduce: ReduceFn;
  /** After the worker handled `msg`: a commit or an abort changes the phase. */
  afterHandle(msg: CoordinatorMessage): void;
}

export function instrument(
  parts: { readonly compute: MicroBatchCompute; readonly reduce: ReduceFn },
  o: {
    readonly observer: WorkerObserver;
    /** The model's FLOPs count; without it micro-batches count 0 FLOPs. */
    readonly flops: FlopsModel | undefined;
    readonly now?: () => number;
  },
): Instrumented {
  const now = o.now ?? (() => performance.now());
  const { observer } = o;
  const measure = async <R extends { tokens: number }>(
    kind: 'train' | 'eval',
    mb: MicroBatch,
    run: () => Promise<R>,
  ): Promise<R> => {
    observer.enterPhase('compute');
    const t0 = now();
    try {
      const r = await run();
      const batch = { rows: mb.rows, seqLen: mb.seqLen, logitRows: r.tokens };
      const flops = o.flops ? (kind === 'train' ? trainStepFlops : forwardFlops)(o.flops, batch) : 0;
      observer.computed({ kind, seconds: (now() - t0) / 1000, inputTokens: mb.rows * mb.seqLen, flops });
      return r;
    } finally {
      // Nothing else queued: the worker waits for the others to finish the step (or evaluation).
      observer.enterPhase('wait');
    }
  };
  const compute: MicroBatchCompute = {
    setAdapter: (params) => parts.compute.setAdapter(params),
    train: (mb) => measure('train', mb, () => parts.compute.train(mb)),
    evaluate: (mb) => measure('eval', mb, () => parts.compute.evaluate(mb)),
  };
  const reduce: ReduceFn = async (round) => {
    observer.enterPhase('allreduce');
    try {
      const sum = await parts.reduce(round);
      observer.enterPhase('commit');
      return sum;
    } catch (err) {
      observer.enterPhase('wait'); // the coordinator aborts the round and starts another
      throw err;
    }
  };
  return {
    compute,
    reduce,
    afterHandle(msg) {
      const c = msg.body?.$case;
      if (c === 'stepCommit') {
        observer.enterPhase('idle');
        observer.stepCommitted();
      } else if (c === 'stepAbort') {
        observer.enterPhase('wait');
      } else if (c === 'finished') {
        observer.enterPhase('idle');
      }
    },
  };
}

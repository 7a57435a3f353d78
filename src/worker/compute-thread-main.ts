// The compute thread of a worker (compute-thread.ts starts it): loads the base model on this
// thread's backend and answers train / evaluate / setAdapter requests, so the worker's main thread
// (gRPC, heartbeats, keepalive, NATS, /metrics) is never blocked by a micro-batch.
import { parentPort, workerData } from 'node:worker_threads';
import type { MicroBatch } from '../data/micro-batch.ts';
import type { BackendChoice, BackendOptions } from '../model/backend.ts';
import { backendMemory } from '../model/backend-memory.ts';
import {
  type LoraRunSettings,
  loadModelCompute,
  type MemoryBudget,
  type MicroBatchCompute,
} from './model-compute.ts';

export interface ComputeThreadData {
  readonly baseModelDir: string;
  readonly backend: BackendChoice;
  readonly settings: LoraRunSettings;
  /** What the memory check before loading counts (src/worker/memory-check.ts). */
  readonly budget: MemoryBudget;
  readonly options: BackendOptions;
  /** Fault injection (tests only): the first train micro-batch blocks this thread this long. */
  readonly blockFirstTrainMs?: number;
}

export type ComputeRequest =
  | { readonly id: number; readonly type: 'setAdapter'; readonly params: Float32Array }
  | { readonly id: number; readonly type: 'train' | 'evaluate'; readonly mb: MicroBatch };

const port = parentPort!;
const data = workerData as ComputeThreadData;

function blocking(inner: MicroBatchCompute, ms: number): MicroBatchCompute {
  let blocked = false;
  return {
    setAdapter: (p) => inner.setAdapter(p),
    evaluate: (mb) => inner.evaluate(mb),
    train: (mb) => {
      if (!blocked) {
        blocked = true;
        // A device call that holds the thread: nothing else runs on it meanwhile.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
      }
      return inner.train(mb);
    },
  };
}

try {
  const loaded = await loadModelCompute(
    data.baseModelDir,
    data.backend,
    data.settings,
    data.budget,
    data.options,
  );
  const compute = data.blockFirstTrainMs ? blocking(loaded.compute, data.blockFirstTrainMs) : loaded.compute;
  port.on('message', async (m: ComputeRequest) => {
    try {
      if (m.type === 'setAdapter') {
        compute.setAdapter(m.params);
      } else if (m.type === 'train') {
        const r = await compute.train(m.mb);
        port.postMessage({ id: m.id, result: r, memory: backendMemory() }, [r.grad.buffer as ArrayBuffer]);
      } else {
        port.postMessage({ id: m.id, result: await compute.evaluate(m.mb), memory: backendMemory() });
      }
    } catch (err) {
      port.postMessage({ id: m.id, error: (err as Error).message });
    }
  });
  port.postMessage({
    loaded: {
      layout: loaded.layout,
      fingerprint: loaded.fingerprint,
      backend: loaded.backend,
      backendSummary: loaded.backendSummary,
      parameters: loaded.parameters,
      memoryNote: loaded.memoryNote,
      flops: loaded.flops,
    },
    memory: backendMemory(),
  });
} catch (err) {
  port.postMessage({ failed: (err as Error).message });
}

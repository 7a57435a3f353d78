// A worker's model runs on a worker_thread (docs/security.md, "Compute off the event loop"): the
// main thread keeps answering the coordinator (heartbeats, keepalive pings) and NATS while a
// micro-batch computes, so a short --heartbeat_timeout_ms detects a hung worker whatever the
// micro-batch length. The thread loads the base model itself (compute-thread-main.ts); this side
// is the same MicroBatchCompute the rest of the worker uses, so nothing else changes.
import { Worker } from 'node:worker_threads';
import type { MicroBatch } from '../data/micro-batch.ts';
import type { BackendChoice, BackendOptions } from '../model/backend.ts';
import type { BackendMemoryNow } from '../model/backend-memory.ts';
import type { FlopsModel } from '../model/flops.ts';
import type { ParamLayout } from '../train/param-layout.ts';
import type { ComputeRequest, ComputeThreadData } from './compute-thread-main.ts';
import type { LoraRunSettings, MemoryBudget, MicroBatchCompute } from './model-compute.ts';

export interface ThreadedCompute {
  readonly compute: MicroBatchCompute;
  readonly layout: ParamLayout;
  readonly fingerprint: string;
  readonly backend: string;
  readonly backendSummary: string;
  readonly parameters: number;
  /** Set when the memory check could not run (a GPU without --device_memory_gb), for the log. */
  readonly memoryNote: string | null;
  /** The model's FLOPs count (src/model/flops.ts), for the worker's MFU. */
  readonly flops: FlopsModel;
  /** The compute thread's backend memory as of its last answer (its tensors live there). */
  memory(): BackendMemoryNow;
  /** Stops the thread. */
  close(): Promise<void>;
}

// The thread runs TypeScript like the rest of lora-mpt: tsx registers itself inside it first.
const MAIN = new URL('./compute-thread-main.ts', import.meta.url).href;
const BOOT = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(MAIN)}); })`;

type Reply =
  | { readonly id: number; readonly result: unknown; readonly memory?: BackendMemoryNow }
  | { readonly id: number; readonly error: string };

export function loadThreadedCompute(
  baseModelDir: string,
  backend: BackendChoice,
  settings: LoraRunSettings,
  budget: MemoryBudget,
  options: BackendOptions = {},
  faults: { readonly blockFirstTrainMs?: number } = {},
): Promise<ThreadedCompute> {
  const data: ComputeThreadData = { baseModelDir, backend, settings, budget, options, ...faults };
  const thread = new Worker(BOOT, { eval: true, workerData: data });
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let next = 0;
  let dead: Error | undefined;
  let latest: BackendMemoryNow = { tensors: 0, tensorBytes: 0 };
  const fail = (err: Error) => {
    dead ??= err;
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
  };
  const request = <T>(
    m: { type: 'train' | 'evaluate'; mb: MicroBatch },
    transfer: ArrayBuffer[] = [],
  ): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (dead) return reject(dead);
      const id = next++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const req: ComputeRequest = { ...m, id };
      thread.postMessage(req, transfer);
    });
  return new Promise((resolve, reject) => {
    thread.on('error', (err) => {
      fail(new Error(`the compute thread failed: ${err.message}`, { cause: err }));
      reject(dead);
    });
    thread.on('exit', (code) => {
      fail(new Error(`the compute thread exited (${code})`));
      reject(dead);
    });
    thread.on(
      'message',
      (
        m:
          | Reply
          | { loaded: Omit<ThreadedCompute, 'compute' | 'close' | 'memory'>; memory: BackendMemoryNow }
          | { failed: string },
      ) => {
        if ('failed' in m) {
          reject(new Error(m.failed));
          void thread.terminate();
          return;
        }
        if ('loaded' in m) {
          const compute: MicroBatchCompute = {
            // A copy travels: the replica keeps its own array.
            setAdapter: (params) => {
              const copy = params.slice();
              if (!dead) thread.postMessage({ type: 'setAdapter', id: -1, params: copy }, [copy.buffer]);
            },
            train: (mb: MicroBatch) => request({ type: 'train', mb }),
            evaluate: (mb: MicroBatch) => request({ type: 'evaluate', mb }),
          };
          latest = m.memory;
          resolve({
            ...m.loaded,
            compute,
            memory: () => latest,
            close: () => thread.terminate().then(() => undefined),
          });
          return;
        }
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if ('error' in m) p.reject(new Error(m.error));
        else {
          if (m.memory) latest = m.memory;
          p.resolve(m.result);
        }
      },
    );
  });
}

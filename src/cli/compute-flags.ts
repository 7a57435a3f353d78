// The flag of every command that runs the model on this machine (finetune, worker, eval, demo).
// Kept apart from src/cli/backend-options.ts, which reaches into src/model: the coordinator's
// flags must not (test/architecture/layers.test.ts).

/** --backend's values. src/model/backend.ts has the same list (BACKEND_CHOICES): this copy keeps the
 * coordinator's flag checks free of TensorFlow.js; test/cli/backend-options.test.ts keeps them equal. */
export const BACKEND_NAMES = ['auto', 'tensorflow', 'tensorflow-gpu', 'wasm', 'cpu', 'synthetic'] as const;

export const numThreadsFlag = {
  kind: 'int',
  default: 0,
  min: 0,
  help: 'TensorFlow intra-op threads of this process (the tensorflow backend; wasm runs one thread). 0: TF_NUM_INTRAOP_THREADS when set, else one per CPU. Several workers on one machine: give each a share of the cores.',
} as const;

export const deviceMemoryFlag = {
  kind: 'float',
  default: 0,
  min: 0,
  help: 'GiB of memory the model may use, for the check before loading (a GPU: its memory, which tfjs-node-gpu does not report). 0: what this machine has available (MemAvailable, or the cgroup limit).',
} as const;

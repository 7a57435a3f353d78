// Before a process loads a model: does it fit? Compares the plan of src/model/memory-plan.ts for this
// config, backend and run settings with the memory this process can have, and refuses with the
// numbers and the flags that would make it fit instead of being killed for memory halfway through.

import { freemem } from 'node:os';
import { constrainedMemory } from 'node:process';
import type { ModelConfig } from '../checkpoint/architecture.ts';
import type { LoraSettings } from '../checkpoint/lora-spec.ts';
import type { ActiveBackend } from '../model/backend.ts';
import { GIB, type MemoryBudget, type MemorySettings, memoryVerdict } from '../model/memory-plan.ts';

/** wasm's tensors live in one WebAssembly memory of at most 4 GiB (minus one page). */
const WASM_HEAP_BYTES = 4 * GIB - 65536;

export interface MemoryRequest {
  /** Rows per micro-batch; 0 where the worker does not know it before the first micro-batch. */
  readonly microBatchSize: number;
  /** cutoff_len. */
  readonly cutoffLen: number;
  readonly load8bit: boolean;
  readonly gradientCheckpointing: boolean;
  readonly lora: LoraSettings;
  /** `--device_memory_gb`: plan against this many GiB instead of what the machine reports; 0 = measure. */
  readonly memoryGib: number;
  /** false for eval (forward only). */
  readonly training: boolean;
}

export class MemoryError extends Error {}

/** What this process may use, per pool: the flag when given; else MemAvailable (Node's freemem() on
 * Linux), lowered to the cgroup limit where one is set, and to the wasm heap on wasm. On a GPU the
 * device's memory is not reported by tfjs-node-gpu: only `--device_memory_gb` can check it, and the
 * host part (wte, int8 weights, optimizer state) is checked against the machine. */
export function memoryBudgets(backend: ActiveBackend, memoryGib: number): MemoryBudget[] {
  const flag = memoryGib > 0 ? memoryGib * GIB : 0;
  let bytes = freemem();
  let where = 'available on this machine (MemAvailable)';
  const limit = constrainedMemory?.() ?? 0;
  if (limit > 0 && limit < bytes) {
    bytes = limit;
    where = "this process's cgroup limit";
  }
  if (backend.summary.includes(', on GPU')) {
    const host: MemoryBudget = { bytes, pool: 'host', where };
    return flag > 0 ? [{ bytes: flag, pool: 'device', where: 'given by --device_memory_gb' }, host] : [host];
  }
  if (flag > 0) return [{ bytes: flag, pool: 'total', where: 'given by --device_memory_gb' }];
  if (backend.name === 'wasm' && WASM_HEAP_BYTES < bytes) {
    bytes = WASM_HEAP_BYTES;
    where = "the wasm backend's heap limit";
  }
  return [{ bytes, pool: 'total', where }];
}

/** Throws MemoryError (one line: the numbers and the flags that would fit) when the run cannot fit.
 * Returns a note for the log when the device could not be checked (a GPU without --device_memory_gb). */
export function checkModelMemory(
  config: ModelConfig,
  backend: ActiveBackend,
  r: MemoryRequest,
): string | null {
  const s: MemorySettings = {
    layout: backend.layout,
    load8bit: r.load8bit,
    gradientCheckpointing: r.gradientCheckpointing,
    microBatchSize: r.microBatchSize,
    seqLen: Math.min(r.cutoffLen, config.maxSeqLen),
    lora: r.lora,
    training: r.training,
  };
  const budgets = memoryBudgets(backend, r.memoryGib);
  for (const b of budgets) {
    const verdict = memoryVerdict(config, s, b);
    if (verdict !== null) throw new MemoryError(verdict);
  }
  return budgets.some((b) => b.pool === 'device')
    ? null
    : budgets[0]?.pool === 'host'
      ? 'GPU memory not checked: tfjs-node-gpu does not report it; pass --device_memory_gb'
      : null;
}

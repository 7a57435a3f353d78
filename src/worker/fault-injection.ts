// Faults a worker injects into itself, for the fault tests only (docs/faults.md): slow compute, a
// stall that stops the whole process answering, a corrupted replica, a delayed all-reduce. Parsed
// once from the hidden `lora-mpt worker --inject_fault` flag; nothing is injected without it.

export interface FaultPlan {
  /** Extra milliseconds after every micro-batch (awaited: a slow but live straggler). */
  readonly slowMs?: number;
  /** After this many train micro-batches the process blocks (no heartbeats, no results) for good. */
  readonly stallAfterMicroBatches?: number;
  /** After its first commit of this step (0-based) or later, one adapter value changes: a diverged replica. */
  readonly corruptReplicaAfterStep?: number;
  /** Before its first all-reduce of `step` (0-based) or later, wait `ms` (the round is in flight). */
  readonly delayReduce?: { readonly step: number; readonly ms: number };
}

export const FAULT_SPEC_HELP =
  'For tests only: slow_ms=N, stall_after_microbatches=N, corrupt_replica_after_step=N, delay_reduce=STEP:MS; comma-separated.';

/** Parses `slow_ms=400,delay_reduce=2:5000`; throws naming the bad part. */
export function parseFaultPlan(spec: string): FaultPlan {
  const plan: {
    slowMs?: number;
    stallAfterMicroBatches?: number;
    corruptReplicaAfterStep?: number;
    delayReduce?: { step: number; ms: number };
  } = {};
  const whole = (key: string, v: string) => {
    if (!/^\d+$/.test(v)) throw new Error(`--inject_fault ${key}=${v}: expected a whole number`);
    return Number(v);
  };
  for (const part of spec.split(',').map((s) => s.trim())) {
    if (part === '') continue;
    const [key, value] = part.split('=', 2) as [string, string | undefined];
    if (value === undefined)
      throw new Error(`--inject_fault "${part}": expected key=value (${FAULT_SPEC_HELP})`);
    switch (key) {
      case 'slow_ms':
        plan.slowMs = whole(key, value);
        break;
      case 'stall_after_microbatches':
        plan.stallAfterMicroBatches = whole(key, value);
        break;
      case 'corrupt_replica_after_step':
        plan.corruptReplicaAfterStep = whole(key, value);
        break;
      case 'delay_reduce': {
        const m = /^(\d+):(\d+)$/.exec(value);
        if (!m) throw new Error(`--inject_fault delay_reduce=${value}: expected STEP:MS`);
        plan.delayReduce = { step: Number(m[1]), ms: Number(m[2]) };
        break;
      }
      default:
        throw new Error(`--inject_fault: unknown fault "${key}" (${FAULT_SPEC_HELP})`);
    }
  }
  return plan;
}

/**
 * Blocks this thread for good without spinning: timers, heartbeats and gRPC pings all stop, as
 * when a process hangs in a driver call. Only SIGKILL (or the coordinator's deadline) ends it.
 */
export function blockForever(): never {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0);
}

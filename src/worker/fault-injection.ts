// Faults a worker injects into itself, for the fault tests only (docs/faults.md): slow compute, a
// stall that stops the whole process answering, a corrupted replica, a delayed all-reduce. Parsed
// once from the `lora-mpt worker --inject_fault` flag; nothing is injected without it. They wrap the
// worker's parts (compute, send, reduce, message handling) from outside: ReplicaWorker knows none.
import { Layout } from '../collective/chunking.ts';
import type { Events } from '../events/events.ts';
import { reduceFailedMessage } from '../protocol/from-worker.ts';
import { type CoordinatorMessage, MicroBatchKind } from '../protocol/wire.ts';
import type { MicroBatchCompute } from './model-compute.ts';
import type { ReduceFn, ReplicaWorker, SendFn } from './replica-worker.ts';

export interface FaultPlan {
  /** Extra milliseconds after every micro-batch (awaited: a slow but live straggler). */
  readonly slowMs?: number;
  /** After this many train micro-batches the process blocks (no heartbeats, no results) for good. */
  readonly stallAfterMicroBatches?: number;
  /** After its first commit of this step (0-based) or later, one adapter value changes: a diverged replica. */
  readonly corruptReplicaAfterStep?: number;
  /** Before its first all-reduce of `step` (0-based) or later, wait `ms` (the round is in flight). */
  readonly delayReduce?: { readonly step: number; readonly ms: number };
  /** The Nth train micro-batch of each session returns an all-NaN gradient (a faulty device). */
  readonly nanGradientAt?: number;
  /** Every train gradient is multiplied by this (finite, but far from the other workers'). */
  readonly scaleGradient?: number;
  /** After this many train micro-batches, computes never finish while heartbeats flow (a hoarder). */
  readonly holdAfterMicroBatches?: number;
  /** The first train micro-batch blocks the compute thread this long (a long device call). */
  readonly blockComputeMs?: number;
  /** Before each all-reduce, blames every other member under an invented generation from this one on (an insider). */
  readonly forgeBlame?: number;
  /** The norm each train result reports is multiplied by this (with scale_gradient: a worker lying about its norm). */
  readonly lieNorm?: number;
  /** Each train gradient value has one random bit flipped with this probability (silent data corruption). */
  readonly flipBits?: number;
  /** From this step (0-based) on, its all-reduce contribution is NaN, signed as its own; results stay finite. */
  readonly nonfiniteFrames?: number;
}

export const FAULT_SPEC_HELP =
  'For tests only: slow_ms=N, stall_after_microbatches=N, corrupt_replica_after_step=N, delay_reduce=STEP:MS, nan_gradient_at=N, scale_gradient=X, hold_after_microbatches=N, block_compute_ms=N, forge_blame=GENERATION, lie_norm=X, flip_bits=P, nonfinite_frames=STEP; comma-separated.';

/** Parses `slow_ms=400,delay_reduce=2:5000`; throws naming the bad part. */
export function parseFaultPlan(spec: string): FaultPlan {
  const plan: {
    slowMs?: number;
    stallAfterMicroBatches?: number;
    corruptReplicaAfterStep?: number;
    delayReduce?: { step: number; ms: number };
    nanGradientAt?: number;
    scaleGradient?: number;
    holdAfterMicroBatches?: number;
    blockComputeMs?: number;
    forgeBlame?: number;
    lieNorm?: number;
    flipBits?: number;
    nonfiniteFrames?: number;
  } = {};
  const real = (key: string, v: string) => {
    if (!Number.isFinite(Number(v)) || v.trim() === '')
      throw new Error(`--inject_fault ${key}=${v}: expected a number`);
    return Number(v);
  };
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
      case 'block_compute_ms':
        plan.blockComputeMs = whole(key, value);
        break;
      case 'hold_after_microbatches':
        plan.holdAfterMicroBatches = whole(key, value);
        break;
      case 'scale_gradient':
        plan.scaleGradient = real(key, value);
        break;
      case 'lie_norm':
        plan.lieNorm = real(key, value);
        break;
      case 'flip_bits':
        plan.flipBits = real(key, value);
        if (plan.flipBits < 0 || plan.flipBits > 1)
          throw new Error(`--inject_fault flip_bits=${value}: expected a probability in [0, 1]`);
        break;
      case 'forge_blame':
        plan.forgeBlame = whole(key, value);
        break;
      case 'nonfinite_frames':
        plan.nonfiniteFrames = whole(key, value);
        break;
      case 'nan_gradient_at':
        plan.nanGradientAt = whole(key, value);
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * flip_bits=P: each value of `grad` has one of its 32 bits flipped with probability P, as silent
 * data corruption on a device would. Seeded by `seed` (worker, micro-batch, count), so a run repeats.
 */
export function flipBits(grad: Float32Array, p: number, seed: string): number {
  let x = 2166136261;
  for (let i = 0; i < seed.length; i++) x = Math.imul(x ^ seed.charCodeAt(i), 16777619);
  const next = () => {
    // xorshift32: small and repeatable; no cryptographic quality needed to corrupt a gradient.
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
  const bits = new Uint32Array(grad.buffer, grad.byteOffset, grad.length);
  let flipped = 0;
  for (let i = 0; i < bits.length; i++) {
    if (next() >= p) continue;
    bits[i]! ^= 1 << Math.floor(next() * 32);
    flipped++;
  }
  return flipped;
}

/** Wraps a worker's parts with the faults of `plan`; each fault fires as the plan says, once where it says so. */
export class FaultInjector {
  private trainResults = 0;
  private stalled = false;
  private delayed = false;
  private corrupted = false;
  private forgedRounds = 0;
  /** The session's own send, for messages the fault makes up (forge_blame). */
  private out: SendFn | undefined;

  constructor(
    private readonly plan: FaultPlan,
    private readonly events: Events,
    /** This worker's id (forge_blame blames the others). */
    private readonly self = '',
  ) {}

  /**
   * slow_ms: every train micro-batch takes that much longer (a live straggler). nan_gradient_at=N:
   * the Nth train micro-batch of this session (the injector is made per session) has an all-NaN
   * gradient, its loss unchanged: only the gradient tells.
   */
  compute(inner: MicroBatchCompute): MicroBatchCompute {
    const ms = this.plan.slowMs;
    const nanAt = this.plan.nanGradientAt;
    const scale = this.plan.scaleGradient;
    const holdAfter = this.plan.holdAfterMicroBatches;
    const flip = this.plan.flipBits;
    if (!ms && nanAt === undefined && scale === undefined && holdAfter === undefined && !flip) return inner;
    let trained = 0;
    return {
      setAdapter: (p) => inner.setAdapter(p),
      evaluate: (mb) => inner.evaluate(mb),
      train: async (mb) => {
        if (holdAfter !== undefined && trained >= holdAfter) {
          this.events.warn('fault_injected', `fault injection: holding micro-batch ${mb.id} for good`, {
            fault: 'hold',
            micro_batch: mb.id,
          });
          return new Promise<never>(() => {});
        }
        const r = await inner.train(mb);
        if (ms) await sleep(ms);
        if (scale !== undefined) for (let i = 0; i < r.grad.length; i++) r.grad[i]! *= scale;
        if (flip) flipBits(r.grad, flip, `${this.self}:${mb.id}:${trained}`);
        if (++trained === nanAt) {
          r.grad.fill(Number.NaN);
          this.events.warn(
            'fault_injected',
            `fault injection: an all-NaN gradient for micro-batch ${mb.id} (train micro-batch ${trained} of this session)`,
            { fault: 'nan_gradient', micro_batch: mb.id },
          );
        }
        return r;
      },
    };
  }

  /**
   * stall_after_microbatches: after the Nth train result leaves, nothing else does; 300 ms later
   * (the result reaches the coordinator, as a real hang keeps the socket's buffer) the process blocks.
   */
  send(inner: SendFn): SendFn {
    this.out = inner;
    const n = this.plan.stallAfterMicroBatches;
    const lie = this.plan.lieNorm;
    if (lie !== undefined) {
      // lie_norm=X: the result says its gradient norm is X times what it is.
      const honest = inner;
      inner = (msg) => {
        const b = msg.body;
        if (b?.$case === 'result' && b.value.kind === MicroBatchKind.MICRO_BATCH_KIND_TRAIN)
          b.value.gradNorm *= lie;
        honest(msg);
      };
    }
    if (n === undefined) return inner;
    return (msg) => {
      if (this.stalled) return;
      inner(msg);
      const b = msg.body;
      if (b?.$case !== 'result' || b.value.kind !== MicroBatchKind.MICRO_BATCH_KIND_TRAIN) return;
      if (++this.trainResults < n) return;
      this.stalled = true;
      setTimeout(() => {
        this.events.warn(
          'fault_injected',
          `fault injection: stalled after ${this.trainResults} micro-batches`,
          {
            fault: 'stall',
            micro_batches: this.trainResults,
          },
        );
        // Let the line reach the pipe before the thread stops for good.
        setTimeout(blockForever, 50);
      }, 300);
    };
  }

  /**
   * delay_reduce=STEP:MS: before its first all-reduce of STEP or later, hold back MS (the round is
   * in flight). forge_blame: see below. nonfinite_frames=STEP: NaN frames from STEP on.
   */
  reduce(inner: ReduceFn): ReduceFn {
    const d = this.plan.delayReduce;
    const forged = this.plan.forgeBlame;
    const nanFrom = this.plan.nonfiniteFrames;
    if (!d && forged === undefined && nanFrom === undefined) return inner;
    return async (round) => {
      if (forged !== undefined) {
        // forge_blame=G: "member m's data was bad" for every other member, in a round that never
        // was; a new invented generation each time, so no blame repeats one already heard.
        const generation = forged + this.forgedRounds++;
        const others = round.members.filter((m) => m !== this.self);
        for (const m of others)
          this.out?.(reduceFailedMessage({ step: round.step, generation }, '', `forged: ${m}'s data`, m));
        this.events.warn(
          'fault_injected',
          `fault injection: blamed ${others.join(', ')} under generation ${generation}`,
          {
            fault: 'forge_blame',
            step: round.step,
            generation,
          },
        );
      }
      if (d && round.step >= d.step && !this.delayed) {
        this.delayed = true;
        this.events.warn(
          'fault_injected',
          `fault injection: holding back from the all-reduce of step ${round.step} generation ${round.generation} for ${d.ms} ms`,
          { fault: 'delay_reduce', step: round.step, generation: round.generation, ms: d.ms },
        );
        await sleep(d.ms);
        if (round.signal.aborted) throw new Error('aborted while held back (fault injection)');
      }
      if (nanFrom !== undefined && round.step >= nanFrom) {
        // nonfinite_frames=STEP: the frames it signs carry NaN (its accumulator is left alone), as
        // a faulty device's would; only its receivers see them and can show them to the coordinator.
        // With shard-owner its own shard stays finite: that shard's final bytes go to the
        // coordinator's observer too, which would otherwise see the NaN itself, first or not by
        // the race of the round, and this fault is the receivers' evidence path.
        this.events.warn(
          'fault_injected',
          `fault injection: NaN in its all-reduce frames of step ${round.step} generation ${round.generation}`,
          { fault: 'nonfinite_frames', step: round.step, generation: round.generation },
        );
        const data = new Float32Array(round.data.length).fill(Number.NaN);
        const me = round.members.indexOf(this.self);
        if (round.algorithm === 'shard-owner' && me >= 0) {
          const own = new Layout(data.length, round.members.length, 1).shard(me);
          data.set(round.data.subarray(own.lo, own.hi), own.lo);
        }
        return inner({ ...round, data });
      }
      return inner(round);
    };
  }

  /** corrupt_replica_after_step=N: after handling its first commit of step N or later, one adapter value changes. */
  afterHandle(msg: CoordinatorMessage, worker: ReplicaWorker, compute: MicroBatchCompute): void {
    const after = this.plan.corruptReplicaAfterStep;
    const b = msg.body;
    if (after === undefined || this.corrupted || b?.$case !== 'stepCommit' || b.value.step < after) return;
    const state = worker.state;
    if (!state) return;
    this.corrupted = true;
    state.params[0] = state.params[0]! + 0.5; // as a bit flip in the replica's memory would
    compute.setAdapter(state.params);
    this.events.warn(
      'fault_injected',
      `fault injection: corrupted this replica's adapter after step ${b.value.step}`,
      { fault: 'corrupt_replica', step: b.value.step },
    );
  }
}

// What a worker does with the coordinator's messages (DESIGN.md §2): it is a replica of the adapter
// state, computes the micro-batches it is dealt into a local gradient accumulator, all-reduces that
// accumulator when the step is whole, reports checksums, and applies AdamW only when the coordinator
// commits. Transport-free: `send` carries its answers and `reduce` is the collective (NATS for a
// `lora-mpt worker`, in-process for `finetune`); the session owns the stream.

import type { FrameEvidence } from '../collective/evidence.ts';
import {
  type AllReduceAlgorithm,
  AllReduceProtocolError,
  type ContributionNorm,
  type ContributionsReporter,
  isAllReduceAlgorithm,
  unknownAlgorithm,
} from '../collective/index.ts';
import type { Events } from '../events/events.ts';
import {
  creditMessage,
  frameEvidenceMessage,
  reducedMessage,
  reduceFailedMessage,
  resultMessage,
  revokedMessage,
} from '../protocol/from-worker.ts';
import { bytesFloats, fromWire } from '../protocol/messages.ts';
import {
  type CoordinatorMessage,
  MicroBatchKind,
  type ReduceStart,
  type StateSync,
  type WireMicroBatch,
  type WorkerMessage,
} from '../protocol/wire.ts';
import type { AdamWState } from '../train/adamw.ts';
import { globalNorm } from '../train/clip.ts';
import type { ParamLayout } from '../train/param-layout.ts';
import { AdapterReplica, type FinalGradient, finalizeGradient } from '../train/replica.ts';
import type { RunConfig } from '../train/run-config.ts';
import type { MicroBatchCompute } from './model-compute.ts';

/** One member's part in an all-reduce round: resolves with the elementwise sum over `members`. */
export type ReduceFn = (round: {
  readonly step: number;
  readonly generation: number;
  readonly members: readonly string[];
  readonly observers: readonly string[];
  /** Node name of each member (the hierarchical algorithm's topology); absent: not known. */
  readonly nodes?: readonly string[];
  readonly algorithm: AllReduceAlgorithm;
  readonly data: Float32Array;
  /** Where the sum goes (data's length): a buffer the worker keeps, so no round allocates one. */
  readonly into: Float32Array;
  readonly signal: AbortSignal;
  /** Raw Ed25519 keys of members ++ observers (ReduceStart): frames must be signed by their sender. */
  readonly participantKeys?: readonly Uint8Array[];
  /** Receives what this member measured of each contributor as a shard owner (forwarded to the coordinator). */
  readonly onContributions?: ContributionsReporter;
}) => Promise<Float32Array>;

export type SendFn = (msg: WorkerMessage) => void;

export interface ReplicaWorkerOptions {
  readonly id: string;
  readonly run: RunConfig;
  readonly layout: ParamLayout;
  readonly compute: MicroBatchCompute;
  readonly maxInFlight: number;
  readonly send: SendFn;
  readonly reduce: ReduceFn;
  readonly events: Events;
  /** A micro-batch's compute failed: this replica cannot go on (the session ends with `err`). */
  onFatal(err: Error): void;
}

export class ReplicaWorker {
  private replica: AdapterReplica | undefined;
  private accumulator: Float32Array;
  /**
   * Where rounds write their sums, kept from step to step (a fresh gradient-sized array per round
   * costs page faults and GC). Two, so a round never overwrites the one a pending (reduced, not yet
   * committed) gradient still holds: a failed retry must not corrupt what a commit may still apply.
   */
  private readonly sums: Float32Array[] = [];
  private pending: { step: number; generation: number; final: FinalGradient } | undefined;
  private queue: WireMicroBatch[] = [];
  private busy = false;
  private credited = false;
  private reduceAbort: AbortController | undefined;
  /** Generation of the all-reduce this worker is in (or last was in). */
  private reduceGeneration: number | undefined;
  private closed = false;

  constructor(private readonly o: ReplicaWorkerOptions) {
    this.accumulator = new Float32Array(o.layout.size);
  }

  /** The replica's weights and moments (undefined before the first StateSync). */
  get state(): AdamWState | undefined {
    return this.replica?.state;
  }

  /** Handles one coordinator message; compute and all-reduce run in the background. */
  handle(msg: CoordinatorMessage): 'finished' | undefined {
    const body = msg.body;
    if (!body || this.closed) return undefined;
    switch (body.$case) {
      case 'stateSync':
        this.sync(body.value);
        return undefined;
      case 'microBatch':
        this.queue.push(body.value);
        void this.drain();
        return undefined;
      case 'reduceStart':
        void this.reduce(body.value);
        return undefined;
      case 'revoke': {
        // Only micro-batches still queued go back; the one being computed is reported as usual.
        const asked = new Set(body.value.ids);
        const step = body.value.step;
        const dropped = this.queue.filter((mb) => mb.step === step && asked.has(mb.id)).map((mb) => mb.id);
        this.queue = this.queue.filter((mb) => !(mb.step === step && asked.has(mb.id)));
        this.o.send(revokedMessage(step, dropped));
        return undefined;
      }
      case 'stepCommit':
        this.commit(body.value.step, body.value.generation, body.value.learningRate);
        return undefined;
      case 'stepAbort':
        // Our accumulator stays: the coordinator still counts our micro-batches for this step.
        // An abort names its generation; one for a round this worker already left changes nothing.
        if (body.value.generation !== this.reduceGeneration) return undefined;
        this.o.events.warn(
          'reduce_aborted',
          `step ${body.value.step} generation ${body.value.generation} aborted: ${body.value.reason}`,
          { step: body.value.step, generation: body.value.generation, reason: body.value.reason },
        );
        this.reduceAbort?.abort();
        this.pending = undefined;
        return undefined;
      case 'finished':
        this.o.events.info(
          body.value.reason.startsWith('run failed') ? 'run_failed' : 'run_finished',
          `run over after ${body.value.steps} steps: ${body.value.reason}`,
          { step: body.value.steps, reason: body.value.reason },
        );
        return 'finished';
      default:
        return undefined;
    }
  }

  /**
   * The session that fed this replica ended: drop queued work and leave any all-reduce, so nothing
   * of the old session (its generation, its micro-batches) runs beside the next one.
   */
  close(): void {
    this.closed = true;
    this.queue = [];
    this.reduceAbort?.abort();
  }

  private sync(s: StateSync): void {
    const names = this.o.layout.specs.map((x) => x.name);
    if (s.names.length !== names.length || s.names.some((n, i) => n !== names[i])) {
      throw new Error(
        `the coordinator's adapter has tensors [${s.names.slice(0, 3).join(', ')}, ...] (${s.names.length}); this worker's model gives ${names.length}: check --lora_target_modules and --base_model`,
      );
    }
    const state = {
      params: bytesFloats(s.params),
      expAvg: bytesFloats(s.expAvg),
      expAvgSq: bytesFloats(s.expAvgSq),
      step: s.optimizerSteps,
    };
    this.replica ??= new AdapterReplica(this.o.layout, new Float32Array(this.o.layout.size));
    this.replica.restore(state);
    const got = this.replica.checksum();
    if (got !== s.checksum)
      throw new Error(`state sync arrived corrupted: checksum ${got}, expected ${s.checksum}`);
    this.accumulator.fill(0);
    this.pending = undefined;
    this.o.compute.setAdapter(this.replica.state.params);
    this.o.events.info('replica_synced', `replica synced at step ${s.step}`, { step: s.step });
    if (!this.credited) {
      this.credited = true;
      this.o.send(creditMessage(this.o.maxInFlight));
    }
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    let mb: WireMicroBatch | undefined;
    try {
      for (mb = this.queue.shift(); mb && !this.closed; mb = this.queue.shift()) {
        const batch = fromWire(mb);
        if (mb.kind === MicroBatchKind.MICRO_BATCH_KIND_EVAL) {
          const r = await this.o.compute.evaluate(batch);
          this.report(mb, r.lossSum, r.tokens, 0);
        } else {
          const r = await this.o.compute.train(batch);
          const acc = this.accumulator;
          for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + r.grad[i]!;
          // The coordinator refuses a non-finite norm (and counts the tokens itself).
          this.report(mb, r.lossSum, r.tokens, globalNorm(r.grad));
        }
      }
    } catch (err) {
      // A compute that throws leaves this replica's accumulator unknown: it must not report again.
      this.close();
      const what = mb ? `micro-batch ${mb.id} of step ${mb.step}` : 'a micro-batch';
      this.o.onFatal(new Error(`computing ${what} failed: ${(err as Error).message}`, { cause: err }));
    } finally {
      this.busy = false;
    }
  }

  private report(mb: WireMicroBatch, lossSum: number, tokens: number, gradNorm: number): void {
    this.o.send(resultMessage(mb, { lossSum, supervisedTokens: tokens, gradNorm }));
  }

  private async reduce(r: ReduceStart): Promise<void> {
    const replica = this.replica;
    if (!replica) return;
    const failed = (error: string, blame?: string, evidence?: FrameEvidence) => {
      if (blame && evidence) this.o.send(frameEvidenceMessage(r, blame, evidence));
      this.o.send(reduceFailedMessage(r, replica.checksum(), error, blame));
    };
    const abort = new AbortController();
    this.reduceAbort = abort;
    this.reduceGeneration = r.generation;
    // Never another algorithm than the one asked for: the members would not meet. The coordinator
    // sees why the round failed.
    const algorithm = r.algorithm;
    if (!isAllReduceAlgorithm(algorithm)) {
      failed(unknownAlgorithm('ReduceStart: algorithm', algorithm));
      return;
    }
    let contributions: readonly ContributionNorm[] = [];
    try {
      const sum = await this.o.reduce({
        step: r.step,
        generation: r.generation,
        members: r.members,
        observers: r.observers,
        // A coordinator that names no nodes (an older one): every member on one node.
        ...(r.nodes.length === r.members.length ? { nodes: r.nodes } : {}),
        algorithm,
        data: this.accumulator,
        into: this.sumBuffer(),
        signal: abort.signal,
        ...(r.participantKeys ? { participantKeys: r.participantKeys.keys } : {}),
        onContributions: (c) => {
          contributions = c;
        },
      });
      const final = finalizeGradient(sum, r.totalSupervisedTokens, this.o.run.maxGradNorm);
      if (!Number.isFinite(final.norm)) {
        // Never applied: the coordinator aborts the step (its own copy is just as non-finite).
        failed(`the reduced gradient is not finite (norm ${final.norm})`);
        return;
      }
      this.pending = { step: r.step, generation: r.generation, final };
      this.o.send(
        reducedMessage(r, {
          checksum: final.checksum,
          gradNorm: final.norm,
          stateChecksum: replica.checksum(),
          contributions,
        }),
      );
    } catch (err) {
      // A peer's data failed a check (non-finite, forged, contradictory): name it to the coordinator.
      // With the frame its sender signed, when a frame was the offence: the coordinator can check it.
      const blame = err instanceof AllReduceProtocolError ? err.member : '';
      const evidence = err instanceof AllReduceProtocolError ? err.evidence : undefined;
      failed((err as Error).message, blame, evidence);
    }
  }

  /** A kept sum buffer that the pending gradient does not hold. */
  private sumBuffer(): Float32Array {
    const held = this.pending?.final.grad;
    let free = this.sums.find((b) => b !== held);
    if (!free) {
      free = new Float32Array(this.accumulator.length);
      this.sums.push(free);
    }
    return free;
  }

  private commit(step: number, generation: number, lr: number): void {
    const p = this.pending;
    if (!this.replica || !p || p.step !== step || p.generation !== generation) {
      throw new Error(
        `commit of step ${step} generation ${generation} without its reduced gradient; this replica must be re-synced`,
      );
    }
    this.replica.apply(p.final.grad, lr);
    this.pending = undefined;
    this.accumulator.fill(0);
    this.o.compute.setAdapter(this.replica.state.params);
  }
}

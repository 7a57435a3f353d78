// What a worker does with the coordinator's messages (DESIGN.md §2): it is a replica of the adapter
// state, computes the micro-batches it is dealt into a local gradient accumulator, all-reduces that
// accumulator over NATS when the step is whole, reports checksums, and applies AdamW only when the
// coordinator commits. Transport-free: `send` carries its answers, the session owns the stream.
import type { NatsConnection } from '@nats-io/transport-node';
import { allReduceSum } from '../collective/index.ts';
import {
  type CoordinatorMessage,
  type MicroBatch,
  MicroBatchKind,
  type ReduceStart,
  type StateSync,
  type WorkerMessage,
} from '../proto/lora_mpt/v1/coordinator.ts';
import type { ParamLayout } from '../train/param-layout.ts';
import { AdapterReplica, type FinalGradient, finalizeGradient } from '../train/replica.ts';
import type { RunConfig } from '../train/run-config.ts';
import { blockForever, type FaultPlan } from './fault-injection.ts';
import type { ComputeBatch, MicroBatchCompute } from './model-compute.ts';

export interface ReplicaWorkerOptions {
  readonly id: string;
  readonly run: RunConfig;
  readonly layout: ParamLayout;
  readonly compute: MicroBatchCompute;
  readonly nc: NatsConnection;
  readonly maxInFlight: number;
  send(msg: WorkerMessage): void;
  log(line: string): void;
  /** Test hook for fault injection (corrupting a replica); never set in production. */
  readonly afterCommit?: (replica: AdapterReplica, step: number) => void;
  /** Faults to inject (tests only: `lora-mpt worker --inject_fault`). */
  readonly faults?: FaultPlan;
}

export class ReplicaWorker {
  private replica: AdapterReplica | undefined;
  private accumulator: Float32Array;
  private pending: { step: number; generation: number; final: FinalGradient } | undefined;
  private queue: MicroBatch[] = [];
  private busy = false;
  private credited = false;
  private reduceAbort: AbortController | undefined;
  /** Generation of the all-reduce this worker is in (or last was in). */
  private reduceGeneration: number | undefined;
  private closed = false;
  /** Fault injection done once: the delayed all-reduce, the corruption. */
  private delayed = false;
  private corrupted = false;
  /** Micro-batches this worker computed, by kind (for logs and the straggler test). */
  readonly computed = { train: 0, eval: 0 };

  constructor(private readonly o: ReplicaWorkerOptions) {
    this.accumulator = new Float32Array(o.layout.size);
  }

  /** Handles one coordinator message. Resolves when it has been dealt with (compute is queued). */
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
        this.o.send({ body: { $case: 'revoked', value: { step, ids: dropped } } });
        return undefined;
      }
      case 'stepCommit':
        this.commit(body.value.step, body.value.generation, body.value.learningRate);
        return undefined;
      case 'stepAbort':
        // Our accumulator stays: the coordinator still counts our micro-batches for this step.
        // An abort names its generation; one for a round this worker already left changes nothing.
        if (body.value.generation !== this.reduceGeneration) return undefined;
        this.o.log(
          `step ${body.value.step} generation ${body.value.generation} aborted: ${body.value.reason}`,
        );
        this.reduceAbort?.abort();
        this.pending = undefined;
        return undefined;
      case 'finished':
        this.o.log(`run finished after ${body.value.steps} steps: ${body.value.reason}`);
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
    const floats = (b: Uint8Array) =>
      new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const state = {
      params: floats(s.params),
      expAvg: floats(s.expAvg),
      expAvgSq: floats(s.expAvgSq),
      step: s.optimizerSteps,
    };
    if (this.replica) this.replica.restore(state);
    else this.replica = new AdapterReplica(this.o.layout, state.params);
    this.replica.restore(state);
    const got = this.replica.checksum();
    if (got !== s.checksum)
      throw new Error(`state sync arrived corrupted: checksum ${got}, expected ${s.checksum}`);
    this.accumulator.fill(0);
    this.pending = undefined;
    this.o.compute.setAdapter(this.replica.state.params);
    this.o.log(`replica synced at step ${s.step}`);
    if (!this.credited) {
      this.credited = true;
      this.o.send({ body: { $case: 'credit', value: { credits: this.o.maxInFlight } } });
    }
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let mb = this.queue.shift(); mb && !this.closed; mb = this.queue.shift()) {
        if (mb.kind === MicroBatchKind.MICRO_BATCH_KIND_EVAL) {
          const r = await this.o.compute.evaluate(toComputeBatch(mb));
          this.computed.eval++;
          this.report(mb, r.lossSum, r.tokens);
        } else {
          const r = await this.o.compute.train(toComputeBatch(mb));
          const acc = this.accumulator;
          for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + r.grad[i]!;
          this.computed.train++;
          await this.injectSlow();
          this.report(mb, r.lossSum, r.tokens);
          await this.injectStall();
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private async injectSlow(): Promise<void> {
    const ms = this.o.faults?.slowMs;
    if (ms) await new Promise((r) => setTimeout(r, ms));
  }

  private async injectStall(): Promise<void> {
    const n = this.o.faults?.stallAfterMicroBatches;
    if (n === undefined || this.computed.train < n) return;
    // Hung from here on: no message is handled any more; the results already written get 300 ms to
    // reach the coordinator (a real hang does not take the socket's buffer with it), then all stops.
    this.closed = true;
    await new Promise((r) => setTimeout(r, 300));
    this.o.log(`fault injection: stalled after ${this.computed.train} micro-batches`);
    blockForever();
  }

  private report(mb: MicroBatch, lossSum: number, tokens: number): void {
    this.o.send({
      body: {
        $case: 'result',
        value: { id: mb.id, step: mb.step, kind: mb.kind, lossSum, supervisedTokens: tokens },
      },
    });
  }

  private async reduce(r: ReduceStart): Promise<void> {
    const replica = this.replica;
    if (!replica) return;
    const answer = (fields: { checksum: string; gradNorm: number; error: string }) =>
      this.o.send({
        body: {
          $case: 'reduceResult',
          value: { step: r.step, generation: r.generation, stateChecksum: replica.checksum(), ...fields },
        },
      });
    const abort = new AbortController();
    this.reduceAbort = abort;
    this.reduceGeneration = r.generation;
    try {
      const delay = this.o.faults?.delayReduce;
      if (delay && r.step >= delay.step && !this.delayed) {
        this.delayed = true;
        this.o.log(
          `fault injection: holding back from the all-reduce of step ${r.step} generation ${r.generation} for ${delay.ms} ms`,
        );
        await new Promise((r) => setTimeout(r, delay.ms));
        if (abort.signal.aborted) throw new Error('aborted while held back (fault injection)');
      }
      const sum = await allReduceSum({
        nc: this.o.nc,
        runId: this.o.run.runId,
        step: r.step,
        generation: r.generation,
        members: r.members,
        observers: r.observers,
        self: this.o.id,
        data: this.accumulator,
        algorithm: r.algorithm === 'ring' ? 'ring' : 'shard-owner',
        timeoutMs: this.o.run.allReduceTimeoutMs,
        signal: abort.signal,
      });
      const final = finalizeGradient(sum, r.totalSupervisedTokens, this.o.run.maxGradNorm);
      this.pending = { step: r.step, generation: r.generation, final };
      answer({ checksum: final.checksum, gradNorm: final.norm, error: '' });
    } catch (err) {
      answer({ checksum: '', gradNorm: 0, error: (err as Error).message });
    }
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
    this.o.afterCommit?.(this.replica, step);
    const corruptAfter = this.o.faults?.corruptReplicaAfterStep;
    if (corruptAfter !== undefined && step >= corruptAfter && !this.corrupted) {
      this.corrupted = true;
      const params = this.replica.state.params;
      params[0] = params[0]! + 0.5;
      this.o.log(`fault injection: corrupted this replica's adapter after step ${step}`);
    }
    this.o.compute.setAdapter(this.replica.state.params);
  }
}

function toComputeBatch(mb: MicroBatch): ComputeBatch {
  return {
    id: mb.id,
    rows: mb.rows,
    seqLen: mb.seqLen,
    inputIds: Int32Array.from(mb.inputIds),
    labels: Int32Array.from(mb.labels),
    attentionMask: Int32Array.from(mb.attentionMask),
  };
}

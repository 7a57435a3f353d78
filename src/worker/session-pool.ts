// Many synthetic worker sessions in one process: a simulated node of a rehearsal or of the cluster
// bench (docs/scale.md). Each session is what `lora-mpt worker --backend synthetic` runs — its own
// gRPC client and Session stream, its own NATS connection, its own replica — only the process (and
// the synthetic backend's noise table) is shared, so 256 workers fit on a few cores.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { MicroBatch } from '../data/micro-batch.ts';
import type { Events } from '../events/events.ts';
import { trainStepFlops } from '../model/flops.ts';
import type { GpuProfile } from '../model/gpu-profiles.ts';
import type { ClientSecurity } from '../protocol/transport.ts';
import { runWorkerSession } from './session.ts';
import { loadSyntheticCompute } from './synthetic-compute.ts';

export interface SessionPoolOptions {
  /** host:port of the coordinator's gRPC endpoint. */
  readonly coordinator: string;
  /** NATS server URL(s). */
  readonly nats: readonly string[];
  /** One session per id. */
  readonly workerIds: readonly string[];
  /** The modelled GPU of every session (null: no modelled time). */
  readonly profile: GpuProfile | null;
  readonly maxInFlight: number;
  readonly security: ClientSecurity;
  /** Events of session `id` (e.g. a child of the process's events with `worker: id`). */
  events(id: string): Events;
  /** Give up after this long without a coordinator (default: never). */
  readonly giveUpAfterMs?: number;
  /** Each trained micro-batch's modelled GPU seconds (what an ideal step would take; the bench). */
  onTrained?(modelledSeconds: number): void;
}

export interface SessionOutcome {
  readonly id: string;
  /** undefined: the run finished for this session; else why it ended. */
  readonly error?: Error;
}

/** Runs every session until its run is finished (or it fails); never rejects. */
export async function runSessionPool(o: SessionPoolOptions): Promise<SessionOutcome[]> {
  return Promise.all(o.workerIds.map((id) => runOne(o, id)));
}

async function runOne(o: SessionPoolOptions, id: string): Promise<SessionOutcome> {
  let nc: NatsConnection | undefined;
  const events = o.events(id);
  try {
    nc = await connect({ servers: [...o.nats], name: `lora-mpt-worker-${id}`, maxReconnectAttempts: -1 });
    await runWorkerSession({
      coordinator: o.coordinator,
      security: o.security,
      workerId: id,
      backend: 'synthetic',
      maxInFlight: o.maxInFlight,
      nc,
      events,
      ...(o.giveUpAfterMs !== undefined ? { giveUpAfterMs: o.giveUpAfterMs } : {}),
      async prepare(run) {
        const loaded = await loadSyntheticCompute(run.baseModel, run, o.profile);
        events.info('model_loaded', `${loaded.backendSummary}: ${loaded.layout.size} LoRA values`, {
          backend: loaded.backend,
          lora_values: loaded.layout.size,
        });
        const compute = loaded.compute;
        const trained = o.onTrained;
        if (!trained) return loaded;
        return {
          ...loaded,
          compute: {
            setAdapter: (params: Float32Array) => compute.setAdapter(params),
            evaluate: (mb: MicroBatch) => compute.evaluate(mb),
            async train(mb: MicroBatch) {
              const r = await compute.train(mb);
              const batch = { rows: mb.rows, seqLen: mb.seqLen, logitRows: r.tokens };
              trained(compute.modelledSeconds(trainStepFlops(loaded.flops, batch)));
              return r;
            },
          },
        };
      },
    });
    return { id };
  } catch (err) {
    return { id, error: err as Error };
  } finally {
    await nc?.close();
  }
}

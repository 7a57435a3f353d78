// A worker's life on the wire: holds one Session stream to the coordinator, says Hello, loads the
// model the run names (once, kept across reconnects), reports Ready, and feeds the stream to a
// ReplicaWorker. When the coordinator goes away (restart, network) it reconnects with exponential
// backoff and is re-synced; a refusal it cannot fix by waiting ends it with the coordinator's reason.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/transport-node';
import { allReduceSum, type RoundOptions } from '../collective/index.ts';
import type { Events } from '../events/events.ts';
import type { FlopsModel } from '../model/flops.ts';
import { CoordinatorClient, type CoordinatorMessage } from '../proto/lora_mpt/v1/coordinator.ts';
import { clientChannelOptions } from '../protocol/channel.ts';
import { publicKeyFromRaw, rawPublicKey } from '../protocol/frame-evidence.ts';
import { helloMessage, readyMessage, workerHeartbeatMessage } from '../protocol/from-worker.ts';
import { type ClientSecurity, clientCredentials } from '../protocol/transport.ts';
import type { ParamLayout } from '../train/param-layout.ts';
import { parseRunConfig, type RunConfig } from '../train/run-config.ts';
import { FaultInjector, type FaultPlan } from './fault-injection.ts';
import { type Instrumented, instrument, type WorkerObserver } from './instrument.ts';
import type { MicroBatchCompute } from './model-compute.ts';
import { type ReduceFn, ReplicaWorker } from './replica-worker.ts';

export interface PreparedModel {
  readonly compute: MicroBatchCompute;
  readonly layout: ParamLayout;
  readonly fingerprint: string;
  /** The model's FLOPs count (for MFU); without it micro-batches count 0 FLOPs. */
  readonly flops?: FlopsModel;
}

export interface WorkerSessionOptions {
  /** host:port of the coordinator's gRPC endpoint. */
  readonly coordinator: string;
  /** TLS and token, or plaintext (`--insecure`). */
  readonly security: ClientSecurity;
  readonly workerId: string;
  readonly backend: string;
  readonly maxInFlight: number;
  /** The machine this worker runs on, told in Hello: the hierarchical all-reduce's topology. */
  readonly nodeName?: string;
  readonly nc: NatsConnection;
  /** Loads the base model and LoRA layout the run names. Called again only if the run config changes. */
  prepare(run: RunConfig): Promise<PreparedModel>;
  readonly events: Events;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Give up after this long without reaching a coordinator (default: never). */
  readonly giveUpAfterMs?: number;
  /** Faults to inject (tests only: `lora-mpt worker --inject_fault`). */
  readonly faults?: FaultPlan;
  /** Where this worker's measurements go (its /metrics); see instrument.ts. */
  readonly observer?: WorkerObserver;
  /** An all-reduce frame was refused (forged, conflicting, non-finite): metrics and events. */
  readonly onRefusedFrame?: RoundOptions['onRefusedFrame'];
}

/** The coordinator refused this worker for a reason waiting will not fix. */
export class RefusedError extends Error {
  override name = 'RefusedError';
}

type Outcome = { kind: 'finished' } | { kind: 'retry'; why: string; welcomed: boolean };

export async function runWorkerSession(o: WorkerSessionOptions): Promise<void> {
  // 60 s: the coordinator's default heartbeat deadline; a micro-batch longer than that is lost anyway.
  const client = new CoordinatorClient(o.coordinator, clientCredentials(o.security), {
    ...clientChannelOptions(60_000),
    // Its own connection even when sessions share a process (session-pool.ts), as workers do.
    'grpc.use_local_subchannel_pool': 1,
  });
  // This process's frame signing key: the private half never leaves it; the public half goes to
  // the coordinator in the Ready, over the authenticated stream, and from there to the peers.
  const signing = generateKeyPairSync('ed25519');
  const peerKeys = new Map<string, KeyObject>();
  const keyOf = (raw: Uint8Array, i: number) => {
    const id = Buffer.from(raw).toString('hex');
    const known = peerKeys.get(id) ?? publicKeyFromRaw(raw, `ReduceStart participant key ${i}`);
    peerKeys.set(id, known);
    return known;
  };
  let prepared: { key: string; model: PreparedModel } | undefined;
  let delay = o.backoffInitialMs ?? 500;
  let lastContact = Date.now();
  try {
    for (;;) {
      const outcome = await once();
      if (outcome.kind === 'finished') return;
      if (outcome.welcomed) {
        delay = o.backoffInitialMs ?? 500;
        lastContact = Date.now();
      }
      if (o.giveUpAfterMs !== undefined && Date.now() - lastContact > o.giveUpAfterMs) {
        throw new Error(
          `no coordinator at ${o.coordinator} for ${o.giveUpAfterMs} ms (last: ${outcome.why})`,
        );
      }
      const wait = Math.round(delay * (0.5 + Math.random() / 2));
      o.events.info(
        'reconnecting',
        `coordinator ${o.coordinator}: ${outcome.why}; reconnecting in ${wait} ms`,
        {
          wait_ms: wait,
          why: outcome.why,
        },
      );
      await new Promise((r) => setTimeout(r, wait));
      delay = Math.min(delay * 2, o.backoffMaxMs ?? 10_000);
    }
  } finally {
    o.observer?.enterPhase('idle');
    client.close();
  }

  function once(): Promise<Outcome> {
    return new Promise((resolve, reject) => {
      const call = client.session();
      let welcomed = false;
      let settled = false;
      let heartbeat: NodeJS.Timeout | undefined;
      let worker: ReplicaWorker | undefined;
      let compute: MicroBatchCompute | undefined;
      let injector: FaultInjector | undefined;
      let measured: Instrumented | undefined;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearInterval(heartbeat);
        o.observer?.enterPhase('idle');
        // The next session gets a fresh replica; this one must not keep computing or reducing.
        worker?.close();
        fn();
      };
      const retry = (why: string) =>
        settle(() => {
          call.cancel();
          resolve({ kind: 'retry', why, welcomed });
        });
      const send = (m: Parameters<typeof call.write>[0]) => {
        if (!settled && !call.writableEnded) call.write(m);
      };
      send(
        helloMessage(o.workerId, {
          backend: o.backend,
          maxInFlight: o.maxInFlight,
          ...(o.nodeName === undefined ? {} : { nodeName: o.nodeName }),
        }),
      );
      const onWelcome = async (
        runConfigJson: string,
        fingerprint: string,
        intervalMs: number,
        frameKey: Uint8Array,
      ) => {
        const run = parseRunConfig(runConfigJson);
        if (frameKey.length !== 0 && frameKey.length !== 32) {
          throw new Error(
            `the Welcome's all-reduce frame key has ${frameKey.length} bytes, not 32; run the same lora-mpt version on workers and coordinator`,
          );
        }
        const serverMax = o.nc.info?.max_payload;
        if (run.allReduceFrameBytes > 0 && serverMax !== undefined && run.allReduceFrameBytes > serverMax) {
          throw new Error(
            `the run's all-reduce frames (coordinator --allreduce_frame_bytes ${run.allReduceFrameBytes}) exceed this worker's NATS server's max_payload (${serverMax} bytes)`,
          );
        }
        // Beat from the Welcome on: loading a large base model takes longer than the deadline.
        heartbeat = setInterval(() => send(workerHeartbeatMessage(Date.now())), intervalMs);
        if (prepared?.key !== runConfigJson) {
          o.events.info('model_loading', `loading base model ${run.baseModel}`, {
            base_model: run.baseModel,
          });
          prepared = { key: runConfigJson, model: await o.prepare(run) };
        }
        if (settled) return; // the session ended while the model loaded (the run finished, say)
        const model = prepared.model;
        if (model.fingerprint !== fingerprint) {
          o.events.warn(
            'warning',
            `base model fingerprint ${model.fingerprint} differs from the run's ${fingerprint}`,
          );
        }
        const faults = o.faults ? new FaultInjector(o.faults, o.events, o.workerId) : undefined;
        const natsReduce: ReduceFn = ({ participantKeys, ...r }) =>
          allReduceSum({
            nc: o.nc,
            runId: run.runId,
            self: o.workerId,
            timeoutMs: run.allReduceTimeoutMs,
            encoding: run.allReduceEncoding,
            ...(run.allReduceFrameBytes > 0 ? { maxPayload: run.allReduceFrameBytes } : {}),
            signingKey: signing.privateKey,
            // The run's key from the Welcome: every frame is made and checked with it.
            ...(frameKey.length > 0 ? { frameKey } : {}),
            ...(o.onRefusedFrame ? { onRefusedFrame: o.onRefusedFrame } : {}),
            ...r,
            ...(participantKeys ? { participantKeys: participantKeys.map(keyOf) } : {}),
            ...(o.observer ? { onReport: (report) => o.observer?.allReduce.record(report) } : {}),
          });
        compute = faults ? faults.compute(model.compute) : model.compute;
        let reduce = faults ? faults.reduce(natsReduce) : natsReduce;
        if (o.observer) {
          // Outside the faults: an injected slow compute is slow compute, as the worker sees it.
          measured = instrument({ compute, reduce }, { observer: o.observer, flops: model.flops });
          compute = measured.compute;
          reduce = measured.reduce;
        }
        worker = new ReplicaWorker({
          id: o.workerId,
          run,
          layout: model.layout,
          compute,
          maxInFlight: o.maxInFlight,
          send: faults ? faults.send(send) : send,
          reduce,
          events: o.events,
          onFatal: (err) =>
            settle(() => {
              call.cancel();
              reject(err);
            }),
        });
        injector = faults;
        send(readyMessage(model.fingerprint, rawPublicKey(signing.publicKey)));
      };
      call.on('data', (msg: CoordinatorMessage) => {
        const body = msg.body;
        if (!body || settled) return;
        if (body.$case === 'refused') {
          const reason = body.value.reason;
          if (body.value.retryable) return retry(`refused for now: ${reason}`);
          return settle(() => {
            call.cancel();
            reject(new RefusedError(`the coordinator refused this worker: ${reason}`));
          });
        }
        if (body.$case === 'welcome') {
          welcomed = true;
          o.observer?.joinedRun(body.value.runId);
          o.events.info(
            'session_joined',
            `joined run ${body.value.runId} as ${body.value.workerId} at step ${body.value.step}`,
            { run_id: body.value.runId, step: body.value.step },
          );
          onWelcome(
            body.value.runConfigJson,
            body.value.modelFingerprint,
            body.value.heartbeatIntervalMs,
            body.value.frameKey,
          ).catch((err: Error) =>
            settle(() => {
              call.cancel();
              reject(err);
            }),
          );
          return;
        }
        if (!worker) {
          // Still loading the model (or syncing) when the run ended: the coordinator says so once,
          // then ends the stream and exits. Dropping this would leave the worker reconnecting to
          // nobody for ever (seen: a worker that joined in a run's last step never exited).
          if (body.$case === 'finished') {
            o.events.info(
              body.value.reason.startsWith('run failed') ? 'run_failed' : 'run_finished',
              `run over after ${body.value.steps} steps, before this worker was ready: ${body.value.reason}`,
              { step: body.value.steps, reason: body.value.reason },
            );
            settle(() => {
              call.end();
              resolve({ kind: 'finished' });
            });
          }
          return;
        }
        try {
          const outcome = worker.handle(msg);
          measured?.afterHandle(msg);
          if (injector && compute) injector.afterHandle(msg, worker, compute);
          if (outcome === 'finished') {
            settle(() => {
              call.end();
              resolve({ kind: 'finished' });
            });
          }
        } catch (err) {
          retry(`dropped the session to be re-synced: ${(err as Error).message}`);
        }
      });
      call.on('error', (err: Error & { code?: number }) => {
        // A credential the coordinator refuses will not become valid by waiting.
        if (err.code === status.UNAUTHENTICATED) {
          return settle(() =>
            reject(new RefusedError(`the coordinator refused this worker's credential: ${err.message}`)),
          );
        }
        retry(`stream error: ${err.message}`);
      });
      call.on('end', () => retry('the coordinator ended the stream'));
    });
  }
}

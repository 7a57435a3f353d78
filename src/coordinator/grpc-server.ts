// The coordinator's gRPC endpoint: one bidirectional Session stream per worker (proto/lora_mpt/v1).
// Checks the handshake, turns stream messages into StepDriver events, sends heartbeats and declares
// a worker lost when its stream closes or it is silent past the deadline.
import { Server, ServerCredentials, type ServerDuplexStream, status } from '@grpc/grpc-js';
import type { Events } from '../events/events.ts';
import {
  type CoordinatorMessage,
  CoordinatorService,
  type WorkerMessage,
} from '../proto/lora_mpt/v1/coordinator.ts';
import { channelOptions } from '../protocol/channel.ts';
import { refusalOf } from '../protocol/handshake.ts';
import { refusedMessage } from '../protocol/messages.ts';
import type { WorkerLink } from './members.ts';
import type { StepDriver } from './step-driver.ts';
import { type WorkerId, workerId } from './step-ledger.ts';
import { deliver } from './worker-messages.ts';

export interface CoordinatorServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly listen: string;
  readonly driver: StepDriver;
  readonly runId: string;
  readonly runConfigJson: string;
  readonly modelFingerprint: string;
  readonly heartbeatIntervalMs: number;
  /** Silence after which a worker is lost (DESIGN §3). */
  readonly heartbeatTimeoutMs: number;
  /**
   * A worker that has not reported a micro-batch this long after it was dealt is lost, even while
   * its heartbeats flow (a hung device call). 0: no such deadline.
   */
  readonly microBatchTimeoutMs?: number;
  /** How long a new stream may take to say Hello. */
  readonly helloTimeoutMs?: number;
  readonly events: Events;
}

export interface CoordinatorServer {
  readonly port: number;
  close(): Promise<void>;
}

type Call = ServerDuplexStream<WorkerMessage, CoordinatorMessage>;

export async function startCoordinatorServer(o: CoordinatorServerOptions): Promise<CoordinatorServer> {
  const { driver } = o;
  const calls = new Map<WorkerId, Call>();

  function session(call: Call): void {
    let id: WorkerId | undefined;
    const helloTimer = setTimeout(() => {
      call.destroy(
        Object.assign(new Error('no Hello'), { code: status.DEADLINE_EXCEEDED, details: 'no Hello' }),
      );
    }, o.helloTimeoutMs ?? 10_000);
    const refuse = (reason: string, retryable = false) => {
      call.write(refusedMessage(reason, retryable));
      call.end();
    };
    call.on('data', (msg: WorkerMessage) => {
      const body = msg.body;
      if (!body) return;
      if (id === undefined) {
        clearTimeout(helloTimer);
        if (body.$case !== 'hello') return refuse(`the first message must be Hello, not ${body.$case}`);
        const refusal = refusalOf(body.value, o.runId, driver.members.ids());
        if (refusal) {
          o.events.warn('worker_refused', `refused worker "${body.value.workerId}": ${refusal.reason}`, {
            worker: body.value.workerId,
            reason: refusal.reason,
            retryable: refusal.retryable,
          });
          return refuse(refusal.reason, refusal.retryable);
        }
        const me = workerId(body.value.workerId);
        id = me;
        const link: WorkerLink = {
          id: me,
          send: (m) => {
            if (!call.writableEnded) call.write(m);
          },
          close: (why) => refuse(why),
        };
        calls.set(me, call);
        driver.join(link);
        const backend = body.value.capabilities?.backend ?? 'unknown';
        o.events.info('worker_joined', `worker ${me} joined (${backend} backend)`, { worker: me, backend });
        link.send({
          body: {
            $case: 'welcome',
            value: {
              runId: o.runId,
              workerId: me,
              runConfigJson: o.runConfigJson,
              modelFingerprint: o.modelFingerprint,
              step: driver.step,
              heartbeatIntervalMs: o.heartbeatIntervalMs,
            },
          },
        });
        return;
      }
      const wrong = deliver(driver, id, msg);
      if (wrong !== undefined) refuse(wrong);
    });
    const gone = (why: string) => {
      clearTimeout(helloTimer);
      if (id !== undefined && calls.get(id) === call) {
        calls.delete(id);
        driver.lose(id, why);
      }
    };
    call.on('end', () => {
      gone('its stream ended');
      if (!call.writableEnded) call.end();
    });
    call.on('error', (err) => gone(`stream error: ${err.message}`));
    call.on('close', () => gone('its stream closed'));
  }

  const server = new Server(channelOptions(o.heartbeatTimeoutMs));
  server.addService(CoordinatorService, { session });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(o.listen, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );

  const beat = setInterval(() => {
    const now = Date.now();
    for (const call of calls.values()) {
      if (!call.writableEnded) call.write({ body: { $case: 'heartbeat', value: { unixMs: now } } });
    }
    // The stream is cancelled, not refused: the worker reconnects with backoff and is re-synced.
    const drop = (id: WorkerId, why: string) => {
      const call = calls.get(id);
      calls.delete(id);
      driver.lose(id, why);
      call?.destroy(Object.assign(new Error(why), { code: status.UNAVAILABLE, details: why }));
    };
    for (const m of driver.members.silentFor(o.heartbeatTimeoutMs)) {
      drop(m.link.id, `no message for ${o.heartbeatTimeoutMs} ms`);
    }
    if (o.microBatchTimeoutMs) {
      for (const [id, ids] of driver.overdueWorkers(o.microBatchTimeoutMs)) {
        drop(id, `micro-batches ${ids.join(', ')} not reported within ${o.microBatchTimeoutMs} ms`);
      }
    }
  }, o.heartbeatIntervalMs);
  beat.unref();

  return {
    port,
    close: async () => {
      clearInterval(beat);
      for (const call of calls.values()) if (!call.writableEnded) call.end();
      // A hung worker never ends its side of the stream: do not let it keep the coordinator alive.
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}

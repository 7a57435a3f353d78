// The coordinator's gRPC endpoint: one bidirectional Session stream per worker (proto/lora_mpt/v1).
// Checks the handshake, turns stream messages into StepDriver events, sends heartbeats and declares
// a worker lost when its stream closes or it is silent past the deadline.
import { Server, ServerCredentials, type ServerDuplexStream, status } from '@grpc/grpc-js';
import {
  type CoordinatorMessage,
  CoordinatorService,
  type WorkerMessage,
} from '../proto/lora_mpt/v1/coordinator.ts';
import type { WorkerLink } from './members.ts';
import { refusalReason } from '../protocol/handshake.ts';
import type { StepDriver } from './step-driver.ts';
import { type WorkerId, workerId } from './step-ledger.ts';

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
  readonly log: (line: string) => void;
}

export interface CoordinatorServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Channel options both ends set on purpose: StateSync of a large adapter is tens of MiB. */
export const GRPC_CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': 512 * 2 ** 20,
  'grpc.max_send_message_length': 512 * 2 ** 20,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
} as const;

/**
 * The same, with the keepalive ping's answer allowed `timeoutMs`. A worker's event loop is blocked
 * for the whole of a micro-batch's compute (tfjs runs on the main thread) and cannot answer or even
 * read a ping meanwhile; with grpc's 5 s a long micro-batch would drop a healthy worker's stream.
 * The coordinator therefore waits as long as its heartbeat deadline, and the worker (whose own
 * ping timer fires first when its loop unblocks) waits as long as the default deadline.
 */
export function channelOptions(keepaliveTimeoutMs: number) {
  return { ...GRPC_CHANNEL_OPTIONS, 'grpc.keepalive_timeout_ms': Math.max(5_000, keepaliveTimeoutMs) };
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
    const refuse = (reason: string) => {
      call.write({ body: { $case: 'refused', value: { reason } } });
      call.end();
    };
    call.on('data', (msg: WorkerMessage) => {
      const body = msg.body;
      if (!body) return;
      if (id === undefined) {
        clearTimeout(helloTimer);
        if (body.$case !== 'hello') return refuse(`the first message must be Hello, not ${body.$case}`);
        const reason = refusalReason(body.value, o.runId, driver.members.ids());
        if (reason) {
          o.log(`refused worker "${body.value.workerId}": ${reason}`);
          return refuse(reason);
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
        o.log(`worker ${me} joined (${body.value.capabilities?.backend ?? 'unknown'} backend)`);
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
      driver.members.touch(id);
      switch (body.$case) {
        case 'ready':
          return driver.onReady(id, body.value.modelFingerprint);
        case 'credit':
          return driver.onCredit(id, body.value.credits);
        case 'result':
          return driver.onResult(id, body.value);
        case 'reduceResult':
          return driver.onReduceResult(id, body.value);
        case 'revoked':
          return driver.onRevoked(id, body.value);
        case 'heartbeat':
          return;
        case 'hello':
          return refuse('Hello was already received on this stream');
      }
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

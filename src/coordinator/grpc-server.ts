// The coordinator's gRPC endpoint: one bidirectional Session stream per worker (proto/lora_mpt/v1).
// Checks the stream's credential before reading anything (docs/security.md), then the handshake,
// turns stream messages into StepDriver events, sends heartbeats and declares a worker lost when its
// stream closes, it is silent past the deadline, or it holds a micro-batch past the deadline.
import { Server, ServerCredentials, type ServerDuplexStream, status } from '@grpc/grpc-js';
import type { Events } from '../events/events.ts';
import { WarningLimiter } from '../events/warning-limiter.ts';
import {
  type CoordinatorMessage,
  CoordinatorService,
  type WorkerMessage,
} from '../proto/lora_mpt/v1/coordinator.ts';
import { COORDINATOR_MESSAGE_MAX, serverChannelOptions } from '../protocol/channel.ts';
import { AUTH_METADATA_KEY, verifyCredential } from '../protocol/credentials.ts';
import { frameKeyRefusal, joinedId, refusalOf } from '../protocol/handshake.ts';
import { heartbeatMessage, refusedMessage, welcomeMessage } from '../protocol/messages.ts';
import { encodeMicroBatchMessage, ScratchBuffer } from '../protocol/micro-batch-encoding.ts';
import { peerText } from '../protocol/peer-text.ts';
import { certificateRunRefusal } from '../protocol/run-binding.ts';
import type { ServerSecurity } from '../protocol/transport.ts';
import {
  type ConnectionRefusal,
  type GateLimits,
  limitsForOpenFiles,
  openConnectionGate,
  type TlsRefusal,
} from './connection-gate.ts';
import { DEFAULT_MAX_CREDITS, type WorkerLink } from './members.ts';
import type { StepDriver } from './step-driver.ts';
import { type WorkerId, workerId } from './step-ledger.ts';
import { deliver } from './worker-messages.ts';

/** Longest node name kept (a DNS name, which Kubernetes node names are, has at most 253). */
const MAX_NODE_NAME = 253;

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
   * its heartbeats flow (a hung device call, a peer hoarding work). 0 or absent: derived from the
   * run's measured micro-batch times, at least the heartbeat deadline.
   */
  readonly microBatchTimeoutMs?: number;
  /** How long a new stream may take to say Hello; a connection with no stream is closed as fast. */
  readonly helloTimeoutMs?: number;
  /** TLS and tokens, or plaintext (`--insecure`). */
  readonly security: ServerSecurity;
  /** Largest message the coordinator sends (sized from the run's adapter; default 512 MiB). */
  readonly maxSendBytes?: number;
  /** Most workers at once; more Hellos are refused (retryable). Default 256. */
  readonly maxWorkers?: number;
  /** Most micro-batches one worker may hold, whatever it declares. Default 8. */
  readonly maxCreditsPerWorker?: number;
  /** The run's all-reduce frame key, handed to each authenticated worker in its Welcome. */
  readonly frameKey?: Uint8Array;
  /** Pre-authentication bounds (connection-gate.ts); default limitsForOpenFiles(1024). */
  readonly limits?: GateLimits;
  /**
   * A peer refused for want of a valid credential (lora_mpt_auth_failures_total{reason}): a failed
   * TLS handshake (its TlsRefusal) or a stream without a valid token (`token`).
   */
  onAuthFailure?(reason: TlsRefusal | 'token' | 'certificate_run', why: string): void;
  /** A TCP connection closed before TLS because a cap was reached. */
  onConnectionRefused?(reason: ConnectionRefusal): void;
  readonly events: Events;
}

export interface CoordinatorServer {
  readonly port: number;
  close(): Promise<void>;
}

type Call = ServerDuplexStream<WorkerMessage, CoordinatorMessage>;

// grpc-js copies what a serializer returns into the gRPC frame it writes (5-byte prefix, then the
// bytes) before it serializes anything else, so the micro-batch encoder writes into one scratch
// buffer: no 6 KB buffer per micro-batch dealt for the collector to sweep (docs/scale.md).
// test/coordinator/serializer-scratch.test.ts holds grpc-js to that.
const microBatchScratch = new ScratchBuffer();

/**
 * The Session service with the coordinator's own encoder for micro-batches, the message it writes
 * most (one per micro-batch dealt: the dispatch path's largest cost with the generated encoder).
 */
const sessionService = {
  ...CoordinatorService,
  session: {
    ...CoordinatorService.session,
    responseSerialize: (m: CoordinatorMessage): Buffer =>
      m.body?.$case === 'microBatch'
        ? encodeMicroBatchMessage(m.body.value, microBatchScratch.take)
        : CoordinatorService.session.responseSerialize(m),
  },
} as const;

/**
 * Ends a stream with a status the client sees at once. (grpc-js sends the status from the stream's
 * 'error' event; `destroy` would drop it, and the client would only notice at its next keepalive.)
 */
function endWithStatus(call: Call, code: status, details: string): void {
  if (call.writableEnded || call.destroyed) return;
  call.emit('error', Object.assign(new Error(details), { code, details }));
}

/** `host:port` or `[v6]:port` of --listen. */
function hostPort(listen: string): { host: string; port: number } {
  const m = /^(?:\[(.+)\]|(.*)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen ${listen}: expected host:port`);
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

export async function startCoordinatorServer(o: CoordinatorServerOptions): Promise<CoordinatorServer> {
  const { driver } = o;
  const calls = new Map<WorkerId, Call>();
  // Every refusal is counted in metrics; only a few per window are written (a flood of peers).
  const refusals = new WarningLimiter(o.events);

  /** The worker id the stream's credential names, or undefined after refusing the stream. */
  function authenticate(call: Call): { credentialId?: string } | undefined {
    const sec = o.security;
    if (sec.kind === 'insecure') return {};
    const auth = call.metadata.get(AUTH_METADATA_KEY)[0];
    const cert = call.getAuthContext()?.sslPeerCertificate;
    const cn = cert?.subject?.CN;
    const verdict = verifyCredential(
      typeof auth === 'string' ? auth : undefined,
      sec.runToken,
      sec.clientCa && typeof cn === 'string' ? cn : undefined,
    );
    // Same CA, another run: the certificate must name this run, whatever token comes with it.
    const otherRun = sec.clientCa ? certificateRunRefusal(cert?.subjectaltname, sec.runToken) : undefined;
    if (verdict.ok && otherRun === undefined) return { credentialId: verdict.workerId };
    const why = verdict.ok ? otherRun! : verdict.why;
    const reason = verdict.ok ? 'certificate_run' : 'token';
    const peer = peerText(call.getPeer(), 64);
    refusals.warn('auth_refused', `refused a stream from ${peer}: ${why}`, { peer, why, reason });
    o.onAuthFailure?.(reason, why);
    // Nothing was read from it and nothing is written but the status: no Welcome, no state, no data.
    endWithStatus(call, status.UNAUTHENTICATED, why);
    return undefined;
  }

  function session(call: Call): void {
    const auth = authenticate(call);
    if (!auth) return;
    let id: WorkerId | undefined;
    const helloTimer = setTimeout(() => {
      endWithStatus(call, status.DEADLINE_EXCEEDED, 'no Hello');
    }, helloTimeoutMs);
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
        const rules = {
          dropped: driver.dropped,
          quarantined: (w: string) => driver.quarantinedFor(w),
          maxWorkers: o.maxWorkers ?? 256,
          ...(auth.credentialId === undefined ? {} : { credentialId: auth.credentialId }),
        };
        const refusal = refusalOf(body.value, o.runId, driver.members.ids(), rules);
        if (refusal) {
          const who = peerText(joinedId(body.value, rules));
          refusals.warn('worker_refused', `refused worker "${who}": ${refusal.reason}`, {
            worker: who,
            reason: refusal.reason,
            retryable: refusal.retryable,
          });
          return refuse(refusal.reason, refusal.retryable);
        }
        const me = workerId(joinedId(body.value, rules));
        id = me;
        const declared = body.value.capabilities?.maxInFlight || DEFAULT_MAX_CREDITS;
        const link: WorkerLink = {
          id: me,
          send: (m) => {
            if (!call.writableEnded) call.write(m);
          },
          close: (why) => refuse(why),
          drop: (why) => {
            calls.delete(me);
            endWithStatus(call, status.UNAVAILABLE, why);
          },
          maxCredits: Math.min(declared, o.maxCreditsPerWorker ?? 8),
          // Only where its all-reduce traffic goes: a wrong name costs bandwidth, not correctness.
          nodeName: (body.value.capabilities?.nodeName ?? '').slice(0, MAX_NODE_NAME),
        };
        calls.set(me, call);
        driver.join(link);
        const backend = peerText(body.value.capabilities?.backend ?? 'unknown', 32);
        const node = peerText(link.nodeName ?? '');
        o.events.info('worker_joined', `worker ${me} joined (${backend} backend, node "${node}")`, {
          worker: me,
          backend,
          node,
        });
        link.send(
          welcomeMessage({
            runId: o.runId,
            workerId: me,
            runConfigJson: o.runConfigJson,
            modelFingerprint: o.modelFingerprint,
            step: driver.step,
            heartbeatIntervalMs: o.heartbeatIntervalMs,
            ...(o.frameKey ? { frameKey: o.frameKey } : {}),
          }),
        );
        return;
      }
      if (body.$case === 'ready') {
        const refusal = frameKeyRefusal(body.value.framePublicKey, o.frameKey !== undefined);
        if (refusal) return refuse(refusal);
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

  const helloTimeoutMs = o.helloTimeoutMs ?? 10_000;
  const server = new Server(
    serverChannelOptions({
      keepaliveTimeoutMs: o.heartbeatTimeoutMs,
      maxSendBytes: o.maxSendBytes ?? COORDINATOR_MESSAGE_MAX,
      idleMs: helloTimeoutMs,
    }),
  );
  server.addService(sessionService, { session });
  // TLS ends in the gate (bounded, counted); gRPC gets sockets whose handshake is complete.
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const gate = await openConnectionGate({
    ...hostPort(o.listen),
    ...(o.limits ?? limitsForOpenFiles(1024)),
    security: o.security,
    accept: (socket) => injector.injectConnection(socket),
    onConnectionRefused: (reason, peer) => {
      o.onConnectionRefused?.(reason);
      refusals.warn('connection_refused', `closed a connection from ${peer} before TLS: ${reason}`, {
        peer,
        reason,
      });
    },
    onTlsRefused: (reason, peer, detail) => {
      o.onAuthFailure?.(reason, detail);
      const why = peerText(detail, 160);
      refusals.warn('tls_refused', `refused a TLS handshake from ${peer}: ${reason} (${why})`, {
        peer,
        reason,
        why,
      });
    },
  });
  const port = gate.port;

  const beat = setInterval(() => {
    const now = Date.now();
    for (const call of calls.values()) {
      if (!call.writableEnded) call.write(heartbeatMessage(now));
    }
    // The stream is cancelled, not refused: the worker reconnects with backoff and is re-synced.
    const drop = (id: WorkerId, why: string) => {
      const call = calls.get(id);
      calls.delete(id);
      driver.lose(id, why);
      if (call) endWithStatus(call, status.UNAVAILABLE, why);
    };
    for (const m of driver.members.silentFor(o.heartbeatTimeoutMs)) {
      drop(m.link.id, `no message for ${o.heartbeatTimeoutMs} ms`);
    }
    const deadline = (id: WorkerId) =>
      driver.microBatchDeadline(id, o.heartbeatTimeoutMs, o.microBatchTimeoutMs);
    for (const [id, ids] of driver.overdueWorkers(deadline)) {
      const call = calls.get(id);
      calls.delete(id);
      driver.hoarded(id, ids, deadline(id));
      if (call)
        endWithStatus(call, status.UNAVAILABLE, `micro-batches ${ids.join(', ')} not reported in time`);
    }
  }, o.heartbeatIntervalMs);
  beat.unref();

  return {
    port,
    close: async () => {
      clearInterval(beat);
      refusals.flush();
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
      await gate.close();
    },
  };
}

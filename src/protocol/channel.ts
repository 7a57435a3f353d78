// gRPC channel settings both ends of the Session stream use on purpose (proto/lora_mpt/v1), with a
// message limit per direction (docs/security.md, "Bounded peers"): what a worker sends is small
// (results, checksums, ids), what the coordinator sends is sized from the run (a StateSync).

/** Largest message a worker sends: results, credits, checksums, revoked ids, an error text. */
export const WORKER_MESSAGE_MAX = 1 * 2 ** 20;
/** Largest message a worker accepts before it knows the run (a StateSync of a large adapter). */
export const COORDINATOR_MESSAGE_MAX = 512 * 2 ** 20;

/** Keepalive notices a dead peer within seconds. */
export const GRPC_CHANNEL_OPTIONS = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
} as const;

/**
 * Keepalive pings whose answer may take `keepaliveTimeoutMs` (at least grpc's 5 s): the heartbeat
 * deadline, not the transport, declares a worker lost (a worker computes on a worker_thread, so
 * its event loop answers; a busy machine may still answer late).
 */
const keepalive = (keepaliveTimeoutMs: number) => ({
  ...GRPC_CHANNEL_OPTIONS,
  'grpc.keepalive_timeout_ms': Math.max(5_000, keepaliveTimeoutMs),
});

/** The worker's side: small messages out, up to COORDINATOR_MESSAGE_MAX in. */
export function clientChannelOptions(keepaliveTimeoutMs: number) {
  return {
    ...keepalive(keepaliveTimeoutMs),
    'grpc.max_send_message_length': WORKER_MESSAGE_MAX,
    'grpc.max_receive_message_length': COORDINATOR_MESSAGE_MAX,
  };
}

/**
 * The coordinator's side: WORKER_MESSAGE_MAX in (a larger message fails its stream before it is
 * buffered), `maxSendBytes` out (sized from the run), and a connection that opens no stream for
 * `idleMs` (a client that never says Hello) is closed.
 */
export function serverChannelOptions(o: {
  readonly keepaliveTimeoutMs: number;
  readonly maxSendBytes: number;
  readonly idleMs: number;
}) {
  return {
    ...keepalive(o.keepaliveTimeoutMs),
    'grpc.max_receive_message_length': WORKER_MESSAGE_MAX,
    'grpc.max_send_message_length': o.maxSendBytes,
    'grpc.max_connection_idle_ms': o.idleMs,
  };
}

/** Send limit for a run whose adapter has `adapterValues` floats: a StateSync (3 vectors) and slack. */
export const coordinatorSendLimit = (adapterValues: number): number =>
  Math.min(COORDINATOR_MESSAGE_MAX, 3 * 4 * adapterValues + 16 * 2 ** 20);

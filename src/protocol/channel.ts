// gRPC channel settings both ends of the Session stream use on purpose (proto/lora_mpt/v1).

/** StateSync of a large adapter is tens of MiB; keepalive notices a dead peer within seconds. */
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

// The coordinator's encoder of its most frequent message, a CoordinatorMessage carrying one
// MicroBatch: the exact size is known from the fields, so it is written into one Buffer of that
// size (varint header fields, then the three int32 byte fields copied whole), where the generated
// encoder grows a writer and copies its result again. Same bytes as the generated encoder's
// (test/protocol/micro-batch-encoding.test.ts); the coordinator's gRPC serializer uses it.
import type { WireMicroBatch } from './wire.ts';

/** Field tags (field number << 3 | wire type) of proto/lora_mpt/v1/coordinator.proto. */
const MICRO_BATCH_IN_COORDINATOR_MESSAGE = (4 << 3) | 2;
const TAG = { id: 1 << 3, step: 2 << 3, kind: 8 << 3, rows: 3 << 3, seqLen: 4 << 3 } as const;
const BYTES_TAG = { inputIds: (5 << 3) | 2, labels: (6 << 3) | 2, attentionMask: (7 << 3) | 2 } as const;

/** Bytes of `v` as a protobuf varint; `v` is a non-negative safe integer (uint64 ids fit). */
function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, at: number, v: number): number {
  while (v >= 128) {
    buf[at++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

/** The varint fields in the generated encoder's order; proto3 leaves a zero out. */
const varintFields = (m: WireMicroBatch) =>
  [
    [TAG.id, m.id],
    [TAG.step, m.step],
    [TAG.kind, m.kind],
    [TAG.rows, m.rows],
    [TAG.seqLen, m.seqLen],
  ] as const;

const bytesFields = (m: WireMicroBatch) =>
  [
    [BYTES_TAG.inputIds, m.inputIds],
    [BYTES_TAG.labels, m.labels],
    [BYTES_TAG.attentionMask, m.attentionMask],
  ] as const;

/**
 * `{ body: { $case: 'microBatch', value: m } }` encoded: what grpc-js writes to the stream. `alloc`
 * gives the buffer of the size needed (default: a new one; the coordinator's serializer passes a
 * scratch buffer, grpc-server.ts).
 */
export function encodeMicroBatchMessage(
  m: WireMicroBatch,
  alloc: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  for (const [, v] of varintFields(m)) {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new Error(`micro-batch ${m.id}: field value ${v} is not a non-negative integer`);
  }
  let inner = 0;
  for (const [tag, v] of varintFields(m)) if (v !== 0) inner += varintSize(tag) + varintSize(v);
  for (const [tag, b] of bytesFields(m))
    if (b.byteLength !== 0) inner += varintSize(tag) + varintSize(b.byteLength) + b.byteLength;
  const buf = alloc(varintSize(MICRO_BATCH_IN_COORDINATOR_MESSAGE) + varintSize(inner) + inner);
  let at = writeVarint(buf, 0, MICRO_BATCH_IN_COORDINATOR_MESSAGE);
  at = writeVarint(buf, at, inner);
  for (const [tag, v] of varintFields(m)) {
    if (v === 0) continue;
    at = writeVarint(buf, at, tag);
    at = writeVarint(buf, at, v);
  }
  for (const [tag, b] of bytesFields(m)) {
    if (b.byteLength === 0) continue;
    at = writeVarint(buf, at, tag);
    at = writeVarint(buf, at, b.byteLength);
    buf.set(b, at);
    at += b.byteLength;
  }
  if (at !== buf.length) throw new Error(`micro-batch ${m.id}: encoded ${at} of ${buf.length} bytes`);
  return buf;
}

/**
 * One buffer, reused: `take(size)` returns its first `size` bytes (growing it when needed), valid
 * until the next call. For a serializer whose caller copies the bytes before it serializes again.
 */
export class ScratchBuffer {
  private buf = Buffer.allocUnsafe(0);

  readonly take = (size: number): Buffer => {
    if (this.buf.length < size) this.buf = Buffer.allocUnsafe(Math.max(size, 2 * this.buf.length));
    return this.buf.subarray(0, size);
  };
}

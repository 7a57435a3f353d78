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

/** Bytes of varint field `tag` = `v`; proto3 leaves a zero out. */
const varintFieldSize = (tag: number, v: number): number => (v === 0 ? 0 : varintSize(tag) + varintSize(v));

/** Bytes of bytes field `tag` = `b`; proto3 leaves an empty one out. */
const bytesFieldSize = (tag: number, b: Uint8Array): number =>
  b.byteLength === 0 ? 0 : varintSize(tag) + varintSize(b.byteLength) + b.byteLength;

function writeVarintField(buf: Buffer, at: number, tag: number, v: number): number {
  return v === 0 ? at : writeVarint(buf, writeVarint(buf, at, tag), v);
}

function writeBytesField(buf: Buffer, at: number, tag: number, b: Uint8Array): number {
  if (b.byteLength === 0) return at;
  at = writeVarint(buf, writeVarint(buf, at, tag), b.byteLength);
  buf.set(b, at);
  return at + b.byteLength;
}

function checkVarint(m: WireMicroBatch, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new Error(`micro-batch ${m.id}: field value ${v} is not a non-negative integer`);
}

/**
 * `{ body: { $case: 'microBatch', value: m } }` encoded: what grpc-js writes to the stream. `alloc`
 * gives the buffer of the size needed (default: a new one; the coordinator's serializer passes a
 * scratch buffer, grpc-server.ts). The fields go in the generated encoder's order. It runs once per
 * micro-batch dealt, so it allocates nothing but what `alloc` returns (docs/scale.md).
 */
export function encodeMicroBatchMessage(
  m: WireMicroBatch,
  alloc: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  checkVarint(m, m.id);
  checkVarint(m, m.step);
  checkVarint(m, m.kind);
  checkVarint(m, m.rows);
  checkVarint(m, m.seqLen);
  const inner =
    varintFieldSize(TAG.id, m.id) +
    varintFieldSize(TAG.step, m.step) +
    varintFieldSize(TAG.kind, m.kind) +
    varintFieldSize(TAG.rows, m.rows) +
    varintFieldSize(TAG.seqLen, m.seqLen) +
    bytesFieldSize(BYTES_TAG.inputIds, m.inputIds) +
    bytesFieldSize(BYTES_TAG.labels, m.labels) +
    bytesFieldSize(BYTES_TAG.attentionMask, m.attentionMask);
  const buf = alloc(varintSize(MICRO_BATCH_IN_COORDINATOR_MESSAGE) + varintSize(inner) + inner);
  let at = writeVarint(buf, 0, MICRO_BATCH_IN_COORDINATOR_MESSAGE);
  at = writeVarint(buf, at, inner);
  at = writeVarintField(buf, at, TAG.id, m.id);
  at = writeVarintField(buf, at, TAG.step, m.step);
  at = writeVarintField(buf, at, TAG.kind, m.kind);
  at = writeVarintField(buf, at, TAG.rows, m.rows);
  at = writeVarintField(buf, at, TAG.seqLen, m.seqLen);
  at = writeBytesField(buf, at, BYTES_TAG.inputIds, m.inputIds);
  at = writeBytesField(buf, at, BYTES_TAG.labels, m.labels);
  at = writeBytesField(buf, at, BYTES_TAG.attentionMask, m.attentionMask);
  if (at !== buf.length) throw new Error(`micro-batch ${m.id}: encoded ${at} of ${buf.length} bytes`);
  return buf;
}

/**
 * One buffer, reused: `take(size)` returns its first `size` bytes (growing it when needed), valid
 * until the next call. For a serializer whose caller copies the bytes before it serializes again.
 * The view of the last size is kept: micro-batches of one shape take the same Buffer object, so a
 * deal allocates no view either.
 */
export class ScratchBuffer {
  private buf = Buffer.allocUnsafe(0);
  private view = this.buf;

  readonly take = (size: number): Buffer => {
    if (this.view.length === size) return this.view;
    if (this.buf.length < size) this.buf = Buffer.allocUnsafe(Math.max(size, 2 * this.buf.length));
    this.view = this.buf.subarray(0, size);
    return this.view;
  };
}

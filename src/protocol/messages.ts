// The messages the coordinator sends on the Session stream, one function each, and the conversion
// of a micro-batch to and from its wire form. What a worker sends: from-worker.ts.
import type { MicroBatch } from '../data/micro-batch.ts';
import { envelope } from './envelope.ts';
import {
  type CoordinatorMessage,
  MicroBatchKind,
  type ReduceStart,
  type StateSync,
  type Welcome,
  type WireMicroBatch,
} from './wire.ts';

export { MicroBatchKind };

const message = envelope<CoordinatorMessage>();

/** The answer to an accepted Hello; `frameKey` absent: frames carry tags anyone can make (tests). */
export const welcomeMessage = (w: Omit<Welcome, 'frameKey'> & { readonly frameKey?: Uint8Array }) =>
  message('welcome', { ...w, frameKey: Buffer.from(w.frameKey ?? new Uint8Array(0)) });

export const heartbeatMessage = (unixMs: number) => message('heartbeat', { unixMs });

export const microBatchMessage = (mb: MicroBatch, step: number, kind: MicroBatchKind) =>
  message('microBatch', toWire(mb, step, kind));

export const stateSyncMessage = (s: StateSync) => message('stateSync', s);

export const reduceStartMessage = (r: ReduceStart) => message('reduceStart', r);

export const stepCommitMessage = (
  step: number,
  generation: number,
  learningRate: number,
  maxGradNorm: number,
) => message('stepCommit', { step, generation, learningRate, maxGradNorm });

export const stepAbortMessage = (step: number, generation: number, reason: string) =>
  message('stepAbort', { step, generation, reason });

export const revokeMessage = (step: number, ids: readonly number[]) =>
  message('revoke', { step, ids: [...ids] });

export const finishedMessage = (steps: number, reason: string) => message('finished', { steps, reason });

export const refusedMessage = (reason: string, retryable: boolean) =>
  message('refused', { reason, retryable });

export function toWire(mb: MicroBatch, step: number, kind: MicroBatchKind): WireMicroBatch {
  return {
    id: mb.id,
    step,
    kind,
    rows: mb.rows,
    seqLen: mb.seqLen,
    inputIds: int32Bytes(mb.inputIds),
    labels: int32Bytes(mb.labels),
    attentionMask: int32Bytes(mb.attentionMask),
  };
}

/**
 * The micro-batch a worker was sent. Throws, naming the field, when a token field is not
 * rows x seq_len int32 values: the coordinator sent something this worker cannot train on.
 */
export function fromWire(mb: WireMicroBatch): MicroBatch {
  const n = mb.rows * mb.seqLen;
  const field = (name: string, b: Uint8Array) => {
    if (b.byteLength !== 4 * n)
      throw new Error(
        `micro-batch ${mb.id} (step ${mb.step}): ${name} has ${b.byteLength} bytes, expected ${4 * n} (${mb.rows} rows x ${mb.seqLen} tokens x 4)`,
      );
    return bytesInt32(b);
  };
  return {
    id: mb.id,
    step: mb.step,
    rows: mb.rows,
    seqLen: mb.seqLen,
    inputIds: field('input_ids', mb.inputIds),
    labels: field('labels', mb.labels),
    attentionMask: field('attention_mask', mb.attentionMask),
  };
}

/** The bytes of an Int32Array, little-endian (every supported host is): a view, nothing copied. */
export const int32Bytes = (a: Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * Int32Array over bytes: a view when they start on a 4-byte boundary (the decoder's own Buffer,
 * which Node aligns), else one copy. A view keeps the message's buffer alive as long as the batch.
 */
export function bytesInt32(b: Uint8Array): Int32Array {
  if (b.byteOffset % 4 === 0) return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Float32Array <-> the bytes fields of StateSync (little-endian, as every supported host is). */
export const floatBytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
export const bytesFloats = (b: Uint8Array) =>
  new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));

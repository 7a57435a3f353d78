import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { MicroBatchKind, toWire } from '../../src/protocol/messages.ts';
import { encodeMicroBatchMessage, ScratchBuffer } from '../../src/protocol/micro-batch-encoding.ts';

// The coordinator writes micro-batches with its own encoder (exact size, one buffer); the generated
// ts-proto codec is the reference it must match byte for byte, for every field's edge values.

const tokens = (n: number, f: (i: number) => number) => Int32Array.from({ length: n }, (_, i) => f(i));
const batch = (id: number, rows: number, seqLen: number) => ({
  id,
  step: 0,
  rows,
  seqLen,
  inputIds: tokens(rows * seqLen, (i) => (i * 7919) % 50277),
  labels: tokens(rows * seqLen, (i) => (i % 3 === 0 ? -100 : i)),
  attentionMask: tokens(rows * seqLen, (i) => (i % 5 === 4 ? 0 : 1)),
});

const cases = [
  ['a 4 x 128 train micro-batch', toWire(batch(17, 4, 128), 3, MicroBatchKind.MICRO_BATCH_KIND_TRAIN)],
  [
    'an eval micro-batch at step 0 with id 0',
    toWire(batch(0, 1, 8), 0, MicroBatchKind.MICRO_BATCH_KIND_EVAL),
  ],
  [
    'ids and steps past 2^32',
    toWire(batch(2 ** 40 + 3, 2, 3), 2 ** 33 + 1, MicroBatchKind.MICRO_BATCH_KIND_TRAIN),
  ],
  ['an empty micro-batch', toWire(batch(5, 0, 0), 1, MicroBatchKind.MICRO_BATCH_KIND_TRAIN)],
  [
    'one whose fields take 2-byte lengths',
    toWire(batch(127, 1, 32), 128, MicroBatchKind.MICRO_BATCH_KIND_TRAIN),
  ],
] as const;

describe("the coordinator's micro-batch encoder", () => {
  for (const [what, wire] of cases) {
    it(`writes ${what} as the generated encoder does`, () => {
      const reference = CoordinatorMessage.encode({ body: { $case: 'microBatch', value: wire } }).finish();
      assert.deepEqual(new Uint8Array(encodeMicroBatchMessage(wire)), reference);
    });
  }

  it('refuses an id that is not a non-negative integer, naming it', () => {
    const wire = toWire(batch(1, 1, 1), 1, MicroBatchKind.MICRO_BATCH_KIND_TRAIN);
    assert.throws(() => encodeMicroBatchMessage({ ...wire, id: -1 }), /micro-batch -1: field value -1/);
    assert.throws(() => encodeMicroBatchMessage({ ...wire, step: 1.5 }), /field value 1.5/);
  });

  it('encodes into a scratch buffer the same bytes, reusing one view per size', () => {
    const scratch = new ScratchBuffer();
    const [a, b] = [batch(1, 4, 128), batch(2, 4, 128)].map((m) =>
      toWire(m, 3, MicroBatchKind.MICRO_BATCH_KIND_TRAIN),
    );
    const first = encodeMicroBatchMessage(a!, scratch.take);
    assert.deepEqual(
      new Uint8Array(first),
      CoordinatorMessage.encode({ body: { $case: 'microBatch', value: a! } }).finish(),
    );
    const second = encodeMicroBatchMessage(b!, scratch.take);
    assert.equal(second, first, 'a message of the same size takes the same view');
    assert.deepEqual(
      new Uint8Array(second),
      CoordinatorMessage.encode({ body: { $case: 'microBatch', value: b! } }).finish(),
    );
    const small = toWire(batch(3, 1, 8), 0, MicroBatchKind.MICRO_BATCH_KIND_EVAL);
    const third = encodeMicroBatchMessage(small, scratch.take);
    assert.deepEqual(
      new Uint8Array(third),
      CoordinatorMessage.encode({ body: { $case: 'microBatch', value: small } }).finish(),
    );
    const large = toWire(batch(4, 8, 128), 0, MicroBatchKind.MICRO_BATCH_KIND_TRAIN);
    assert.deepEqual(
      new Uint8Array(encodeMicroBatchMessage(large, scratch.take)),
      CoordinatorMessage.encode({ body: { $case: 'microBatch', value: large } }).finish(),
    );
  });
});

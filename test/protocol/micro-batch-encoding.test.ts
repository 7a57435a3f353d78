import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { MicroBatchKind, toWire } from '../../src/protocol/messages.ts';
import { encodeMicroBatchMessage } from '../../src/protocol/micro-batch-encoding.ts';

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
});

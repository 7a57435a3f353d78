import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MicroBatch } from '../../src/data/micro-batch.ts';
import { CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { fromWire, MicroBatchKind, microBatchMessage } from '../../src/protocol/messages.ts';

// Protocol 6: a micro-batch's token ids, labels and mask cross the Session stream as little-endian
// int32 bytes. What the coordinator builds must decode, through the generated codec, to the same
// numbers on the worker, whatever the values (a label of -100, the largest int32).

const rows = 2;
const seqLen = 5;
const batch: MicroBatch = {
  id: 41,
  step: 3,
  rows,
  seqLen,
  inputIds: Int32Array.from([0, 1, 50276, 65536, 2 ** 31 - 1, 7, 8, 9, 10, 11]),
  labels: Int32Array.from([-100, 1, 50276, -100, 2 ** 31 - 1, -100, -100, 9, 10, -(2 ** 31)]),
  attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]),
};

const received = () => {
  const bytes = CoordinatorMessage.encode(
    microBatchMessage(batch, 3, MicroBatchKind.MICRO_BATCH_KIND_TRAIN),
  ).finish();
  const body = CoordinatorMessage.decode(bytes).body;
  assert.equal(body?.$case, 'microBatch');
  return body.value;
};

describe('a micro-batch on the wire', () => {
  it('carries each value as 4 little-endian bytes, in order', () => {
    const wire = received();
    for (const [field, want] of [
      [wire.inputIds, batch.inputIds],
      [wire.labels, batch.labels],
      [wire.attentionMask, batch.attentionMask],
    ] as const) {
      const view = new DataView(field.buffer, field.byteOffset, field.byteLength);
      assert.equal(field.byteLength, 4 * rows * seqLen);
      assert.deepEqual(
        Array.from({ length: rows * seqLen }, (_, i) => view.getInt32(4 * i, true)),
        Array.from(want),
      );
    }
  });

  it('decodes on the worker to the micro-batch the coordinator dealt', () => {
    const mb = fromWire(received());
    assert.deepEqual(
      { ...mb, inputIds: [...mb.inputIds], labels: [...mb.labels], attentionMask: [...mb.attentionMask] },
      {
        ...batch,
        inputIds: [...batch.inputIds],
        labels: [...batch.labels],
        attentionMask: [...batch.attentionMask],
      },
    );
  });

  it('decodes bytes that do not start on a 4-byte boundary', () => {
    const wire = received();
    const shifted = Buffer.alloc(wire.labels.byteLength + 1);
    wire.labels.copy(shifted, 1);
    const mb = fromWire({ ...wire, labels: shifted.subarray(1) });
    assert.deepEqual([...mb.labels], [...batch.labels]);
  });

  it('refuses a field that is not rows x seq_len int32 values, naming it', () => {
    const wire = received();
    assert.throws(
      () => fromWire({ ...wire, attentionMask: wire.attentionMask.subarray(0, 38) }),
      /micro-batch 41 \(step 3\): attention_mask has 38 bytes, expected 40 \(2 rows x 5 tokens x 4\)/,
    );
    assert.throws(() => fromWire({ ...wire, inputIds: Buffer.alloc(0) }), /input_ids has 0 bytes/);
  });
});

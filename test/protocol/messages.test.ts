import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoordinatorMessage, WorkerMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import {
  creditMessage,
  helloMessage,
  readyMessage,
  reducedMessage,
  reduceFailedMessage,
  resultMessage,
  revokedMessage,
  workerHeartbeatMessage,
} from '../../src/protocol/from-worker.ts';
import { PROTOCOL_VERSION } from '../../src/protocol/handshake.ts';
import { heartbeatMessage, MicroBatchKind, welcomeMessage } from '../../src/protocol/messages.ts';

// The builders of src/protocol are where each end's messages are made (test/architecture/wire-seam):
// what they build must cross the generated codec unchanged, and carry the contract's rules.

const round = { step: 4, generation: 7 };
const train = { id: 12, step: 4, kind: MicroBatchKind.MICRO_BATCH_KIND_TRAIN };

describe('the messages a worker sends', () => {
  const built: readonly [string, WorkerMessage][] = [
    ['hello', helloMessage('w0.pod', { backend: 'cpu', maxInFlight: 3 })],
    ['heartbeat', workerHeartbeatMessage(1_700_000_000_123)],
    ['ready', readyMessage('fp-1')],
    ['credit', creditMessage(2)],
    ['result', resultMessage(train, { lossSum: 3.5, supervisedTokens: 9, gradNorm: 0.25 })],
    ['revoked', revokedMessage(4, [1, 2])],
    ['reduced', reducedMessage(round, { checksum: 'c', gradNorm: 1.5, stateChecksum: 's' })],
    ['reduce failed', reduceFailedMessage(round, 's', 'timeout', 'w1')],
  ];
  for (const [what, msg] of built) {
    it(`builds ${what} as the codec reads it back`, () => {
      assert.deepEqual(WorkerMessage.decode(WorkerMessage.encode(msg).finish()), msg);
    });
  }

  it('says Hello with this build protocol version, joining whatever run the coordinator owns', () => {
    const body = helloMessage('w0', { backend: 'wasm', maxInFlight: 1 }).body;
    assert.equal(body?.$case, 'hello');
    assert.deepEqual(body.value, {
      protocolVersion: PROTOCOL_VERSION,
      runId: '',
      workerId: 'w0',
      // No node name given: proto3's empty string, which the coordinator reads as "no node".
      capabilities: { backend: 'wasm', deviceMemoryBytes: 0, maxInFlight: 1, nodeName: '' },
    });
    const named = helloMessage('w1', { backend: 'wasm', maxInFlight: 1, nodeName: 'gpu-node-3' }).body;
    assert.equal(named?.$case === 'hello' && named.value.capabilities?.nodeName, 'gpu-node-3');
  });

  it('reports a result for the micro-batch it answers, with no field it was not given', () => {
    const computed = { lossSum: 1, supervisedTokens: 2, gradNorm: 3, grad: new Float32Array(4) };
    const body = resultMessage(train, computed).body;
    assert.equal(body?.$case, 'result');
    assert.deepEqual(body.value, { ...train, lossSum: 1, supervisedTokens: 2, gradNorm: 3 });
  });

  it('leaves the checksum empty in a failed round and cuts its error at 2048 characters', () => {
    for (const [error, kept] of [
      ['x'.repeat(2047), 2047],
      ['x'.repeat(2048), 2048],
      ['x'.repeat(2049), 2048],
    ] as const) {
      const body = reduceFailedMessage(round, 's', error).body;
      assert.equal(body?.$case, 'reduceResult');
      assert.deepEqual(
        { ...body.value, error: body.value.error.length },
        {
          ...round,
          checksum: '',
          gradNorm: 0,
          stateChecksum: 's',
          error: kept,
          blame: '',
          contributions: [],
        },
      );
    }
  });
});

describe("the messages the coordinator's transport sends", () => {
  it('welcomes with the run key, or an empty one when the run has none', () => {
    const w = {
      runId: 'r',
      workerId: 'w0',
      runConfigJson: '{}',
      modelFingerprint: 'fp',
      step: 3,
      heartbeatIntervalMs: 500,
    };
    for (const [key, bytes] of [
      [Uint8Array.of(1, 2, 3), [1, 2, 3]],
      [undefined, []],
    ] as const) {
      const msg = welcomeMessage({ ...w, ...(key ? { frameKey: key } : {}) });
      const back = CoordinatorMessage.decode(CoordinatorMessage.encode(msg).finish());
      assert.equal(back.body?.$case, 'welcome');
      assert.deepEqual(
        { ...back.body.value, frameKey: [...back.body.value.frameKey] },
        { ...w, frameKey: bytes },
      );
    }
  });

  it('beats with the time it is given', () => {
    assert.deepEqual(heartbeatMessage(42), { body: { $case: 'heartbeat', value: { unixMs: 42 } } });
  });
});

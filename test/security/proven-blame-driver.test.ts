import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { signedFrameOf } from '../../src/collective/evidence.ts';
import { encodeFrame, FrameKind, framePayload, runHash } from '../../src/collective/frame.ts';
import type { WorkerLink } from '../../src/coordinator/members.ts';
import { workerId } from '../../src/coordinator/step-ledger.ts';
import type { CoordinatorMessage, ReduceStart } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { evidenceToWire, rawPublicKey } from '../../src/protocol/frame-evidence.ts';
import { MicroBatchKind } from '../../src/protocol/messages.ts';
import { recordEvents } from '../support/recorded-events.ts';
import { testDriver } from '../support/test-driver.ts';

// The product's step driver judging a blame that comes with a frame (FrameEvidenceReport, then the
// failed ReduceResult, as a member sends them): every member has its own Ed25519 key, announced at
// Ready as a worker does, and the frames are encoded and signed as src/collective makes them.
const RUN = 'run-e';
const FRAME_KEY = randomBytes(32);
const IDS = ['a', 'b', 'x'];
const pairs = new Map(IDS.map((id) => [id, generateKeyPairSync('ed25519')]));
const observer = generateKeyPairSync('ed25519');

function threeSigningWorkers() {
  const recorded = recordEvents();
  const { driver } = testDriver(recorded.events, RUN, {
    frameRules: { runId: RUN, frameKey: FRAME_KEY, encoding: 'f32', length: 4 },
    observerPublicKey: rawPublicKey(observer.publicKey),
  });
  const sent = new Map<string, CoordinatorMessage[]>();
  const ended = new Map<string, string>();
  for (const id of IDS) {
    sent.set(id, []);
    const link: WorkerLink = {
      id: workerId(id),
      send: (m) => sent.get(id)!.push(m),
      close: (why) => ended.set(id, `closed: ${why}`),
      drop: (why) => ended.set(id, `dropped: ${why}`),
    };
    driver.join(link);
    driver.onReady(link.id, 'fp', rawPublicKey(pairs.get(id)!.publicKey));
    driver.onCredit(link.id, 1);
  }
  for (const [id, msgs] of sent) {
    for (const m of msgs) {
      if (m.body?.$case !== 'microBatch') continue;
      const { id: mbId } = m.body.value;
      driver.onResult(workerId(id), {
        id: mbId,
        step: 0,
        kind: MicroBatchKind.MICRO_BATCH_KIND_TRAIN,
        lossSum: 1,
        supervisedTokens: 1,
        gradNorm: 1,
      });
    }
  }
  const start = (): ReduceStart => {
    const last = sent
      .get('a')!
      .filter((m) => m.body?.$case === 'reduceStart')
      .at(-1)?.body;
    assert.ok(last?.$case === 'reduceStart', 'the all-reduce of step 0 opened');
    return last.value;
  };
  /** `signer`'s frame in `named`'s name, all NaN, of round `r` (default the open one). */
  const nanFrame = (named: string, signer: string, r: Partial<ReduceStart> = {}) => {
    const s = { ...start(), ...r };
    const header = {
      kind: FrameKind.shardReduce,
      runHash: runHash(RUN),
      step: s.step,
      generation: s.generation,
      from: start().members.indexOf(named),
      shard: 0,
      chunk: 0,
      chunkCount: 1,
      offset: 0,
      totalLength: 4,
    };
    const msg = encodeFrame(
      header,
      new Float32Array(2).fill(Number.NaN),
      FRAME_KEY,
      undefined,
      pairs.get(signer)!.privateKey,
    );
    return { reason: 'nonfinite' as const, frame: signedFrameOf(msg), payload: framePayload(msg).slice() };
  };
  /** `accuser` shows `frame` and blames `accused` for round `generation` of step 0 (default the open one). */
  const blameWith = (
    accuser: string,
    accused: string,
    frame: ReturnType<typeof nanFrame>,
    generation = start().generation,
  ) => {
    const step = 0;
    driver.onFrameEvidence(workerId(accuser), { step, generation, accused, evidence: evidenceToWire(frame) });
    driver.onReduceResult(workerId(accuser), {
      step,
      generation,
      checksum: '',
      gradNorm: 0,
      stateChecksum: '',
      error: `${accused} sent a non-finite value`,
      blame: accused,
      contributions: [],
    });
  };
  return { driver, recorded, ended, start, nanFrame, blameWith };
}

describe('blame with signed-frame evidence (step driver)', () => {
  it('refuses the signer of a NaN frame shown by two members once, and neither accuser', () => {
    const h = threeSigningWorkers();
    const generation = h.start().generation;
    const frame = h.nanFrame('x', 'x');
    h.blameWith('a', 'x', frame);
    // b shows the same frame of the same round, which the coordinator has already retried without x.
    h.blameWith('b', 'x', frame, generation);
    assert.equal(h.ended.get('a'), undefined);
    assert.equal(h.ended.get('b'), undefined);
    assert.match(
      h.ended.get('x') ?? '',
      new RegExp(
        `^dropped: .*generation ${generation} was refused \\(it signed a frame with non-finite values .*shown by a\\)`,
      ),
    );
    const refused = h.recorded.records.filter((r) => r.name === 'result_refused');
    assert.deepEqual(
      refused.map((r) => [r.fields.worker, r.fields.offences]),
      [['x', 1]],
      'one offence for one round',
    );
    assert.ok(!h.recorded.records.some((r) => r.name === 'blame_ignored'));
    assert.ok(h.driver.members.has('a') && h.driver.members.has('b') && !h.driver.members.has('x'));
  });

  it('treats evidence that proves nothing as a word alone: the accused pays nothing', () => {
    const cases = [
      ['a frame a signed in x’s name', (h: ReturnType<typeof threeSigningWorkers>) => h.nanFrame('x', 'a')],
      [
        'x’s frame of another generation',
        (h: ReturnType<typeof threeSigningWorkers>) =>
          h.nanFrame('x', 'x', { generation: h.start().generation + 7 }),
      ],
      ['b’s own frame, blaming x', (h: ReturnType<typeof threeSigningWorkers>) => h.nanFrame('b', 'b')],
    ] as const;
    for (const [what, make] of cases) {
      const h = threeSigningWorkers();
      h.blameWith('a', 'x', make(h));
      assert.equal(h.ended.get('x'), undefined, what);
      assert.equal(
        h.ended.get('a'),
        undefined,
        `${what}: one unverifiable blame costs the accuser nothing yet`,
      );
      assert.equal(h.recorded.records.filter((r) => r.name === 'blame_ignored').length, 1, what);
    }
  });
});

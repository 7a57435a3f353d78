import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { credentials } from '@grpc/grpc-js';
import { startCoordinatorServer } from '../../src/coordinator/grpc-server.ts';
import type { WorkerLink } from '../../src/coordinator/members.ts';
import { workerId } from '../../src/coordinator/step-ledger.ts';
import { silentEvents } from '../../src/events/events.ts';
import {
  CoordinatorClient,
  type CoordinatorMessage,
  MicroBatchKind,
} from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { PROTOCOL_VERSION } from '../../src/protocol/handshake.ts';
import { finalizeGradient } from '../../src/train/replica.ts';
import { recordEvents } from '../support/recorded-events.ts';
import { testDriver } from '../support/test-driver.ts';

// The coordinator's side of "messages from an older generation or another run are ignored"
// (the collective's own frames are covered in test/collective/faults.test.ts).

/** A driver for 2 steps of micro-batches [10, 11] and [20, 21]; the test plays worker and collective. */
function harness() {
  const recorded = recordEvents();
  const { driver, replica, rounds, commits } = testDriver(recorded.events);
  const sent: CoordinatorMessage[] = [];
  const link: WorkerLink = { id: workerId('w0'), send: (m) => sent.push(m), close: () => {}, drop: () => {} };
  /** Generations of the ReduceStart or StepCommit messages sent so far. */
  const of = (c: 'reduceStart' | 'stepCommit') =>
    sent.flatMap((m) =>
      m.body?.$case === c && (m.body.$case === 'reduceStart' || m.body.$case === 'stepCommit')
        ? [{ generation: m.body.value.generation }]
        : [],
    );
  const report = (step: number, id: number) =>
    driver.onResult(link.id, {
      id,
      step,
      kind: MicroBatchKind.MICRO_BATCH_KIND_TRAIN,
      lossSum: 1,
      supervisedTokens: 1,
      gradNorm: 1,
    });
  driver.join(link);
  driver.onReady(link.id, 'fp');
  driver.onCredit(link.id, 2);
  return { driver, replica, recorded, rounds, commits, of, report, link };
}

const gradient = () => Float32Array.of(0.5, -0.5, 0.25, 0);
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('coordinator ignores stale messages', () => {
  it('commits a retried step only on reduce results of the current generation', async () => {
    const h = harness();
    h.report(0, 10);
    h.report(0, 11);
    const first = h.of('reduceStart')[0]!;
    h.rounds[0]!.reject(new Error('NATS went away'));
    await tick(300); // the driver retries after 200 ms
    const second = h.of('reduceStart')[1]!;
    assert.ok(second.generation > first.generation);
    const state = h.replica.checksum();
    const final = finalizeGradient(gradient(), 2, 1);
    const result = (generation: number) => ({
      step: 0,
      generation,
      checksum: final.checksum,
      gradNorm: final.norm,
      stateChecksum: state,
      error: '',
      blame: '',
      contributions: [],
    });
    h.rounds[1]!.resolve(gradient());
    await tick();
    h.driver.onReduceResult(h.link.id, result(first.generation));
    await tick();
    assert.deepEqual(h.of('stepCommit'), [], 'a result of the aborted generation does not commit');
    assert.match(
      h.recorded.texts(),
      new RegExp(`ignored reduce result of step 0 generation ${first.generation}`),
    );
    h.driver.onReduceResult(h.link.id, result(second.generation));
    await tick();
    assert.deepEqual(
      h.of('stepCommit').map((c) => c.generation),
      [second.generation],
    );
    assert.deepEqual(h.commits, [0]);
  });

  it('does not count a result for a micro-batch of an earlier step', async () => {
    const h = harness();
    h.report(0, 10);
    h.report(0, 11);
    const g = h.of('reduceStart')[0]!.generation;
    h.rounds[0]!.resolve(gradient());
    const final = finalizeGradient(gradient(), 2, 1);
    h.driver.onReduceResult(h.link.id, {
      step: 0,
      generation: g,
      checksum: final.checksum,
      gradNorm: final.norm,
      stateChecksum: h.replica.checksum(),
      error: '',
      blame: '',
      contributions: [],
    });
    await tick(10);
    assert.deepEqual(h.commits, [0]);
    assert.match(h.driver.describe(), /^step 1: 0 micro-batches pending/);
    h.report(0, 10); // a late duplicate of step 0
    assert.match(h.recorded.texts(), /ignored train result of micro-batch 10 \(step 0\) from w0/);
    assert.ok(
      h.recorded.records.some(
        (r) => r.name === 'result_ignored' && r.fields.micro_batch === 10 && r.fields.worker === 'w0',
      ),
      'a result_ignored event names the micro-batch and the worker',
    );
    assert.equal(h.of('reduceStart').length, 1, 'step 1 is not whole: no all-reduce starts');
  });
});

describe('coordinator handshake over gRPC', () => {
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of closers) await c();
  });

  it('refuses a worker that names another run, saying which run this is', async () => {
    const h = harness();
    const server = await startCoordinatorServer({
      listen: '127.0.0.1:0',
      driver: h.driver,
      runId: 'run-a',
      runConfigJson: '{}',
      modelFingerprint: 'fp',
      heartbeatIntervalMs: 1000,
      security: { kind: 'insecure' },
      heartbeatTimeoutMs: 5000,
      events: silentEvents,
    });
    closers.push(() => server.close());
    const client = new CoordinatorClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    closers.push(async () => client.close());
    const call = client.session();
    const got: CoordinatorMessage[] = [];
    const ended = new Promise<void>((resolve) => {
      call.on('data', (m: CoordinatorMessage) => got.push(m));
      call.on('end', () => resolve());
      call.on('error', () => resolve());
    });
    call.write({
      body: {
        $case: 'hello',
        value: { protocolVersion: PROTOCOL_VERSION, runId: 'run-b', workerId: 'intruder' },
      },
    });
    await ended;
    assert.equal(got.length, 1);
    const body = got[0]!.body;
    assert.equal(body?.$case, 'refused');
    assert.match(body.value.reason, /this coordinator runs "run-a", not "run-b"/);
    assert.ok(!h.driver.members.has('intruder'), 'the refused worker is not a member');
  });
});

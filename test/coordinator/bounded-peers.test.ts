import assert from 'node:assert/strict';
import { connect as http2Connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { credentials, status } from '@grpc/grpc-js';
import { type CoordinatorServer, startCoordinatorServer } from '../../src/coordinator/grpc-server.ts';
import { StepDriver } from '../../src/coordinator/step-driver.ts';
import { silentEvents } from '../../src/events/events.ts';
import { CoordinatorClient, type CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { PROTOCOL_VERSION, refusalOf } from '../../src/protocol/handshake.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';
import { mb } from '../support/test-driver.ts';

const hello = (workerId: string, maxInFlight = 2) => ({
  protocolVersion: PROTOCOL_VERSION,
  runId: '',
  workerId,
  capabilities: { backend: 'test', deviceMemoryBytes: 0, maxInFlight, nodeName: '' },
});

// Real gRPC on loopback against the product's server and step driver: what one peer can take.
describe('bounded peers', () => {
  let server: CoordinatorServer;
  before(async () => {
    const driver = new StepDriver({
      runId: 'run-b',
      modelFingerprint: 'fp',
      totalSteps: 1,
      minWorkers: 1,
      maxGradNorm: 1,
      evalSteps: 100,
      replica: new AdapterReplica(paramLayout([{ name: 'a', shape: [2] }]), Float32Array.of(1, 2)),
      microBatches: () => Array.from({ length: 40 }, (_, i) => mb(i)),
      evalMicroBatches: [],
      learningRate: () => 0,
      observerId: 'coordinator',
      algorithm: 'shard-owner',
      observeReduce: () => new Promise(() => {}),
      onCommit: async () => {},
      onEval: async () => {},
      afterStep: async () => {},
      events: silentEvents,
    });
    server = await startCoordinatorServer({
      listen: '127.0.0.1:0',
      driver,
      runId: 'run-b',
      runConfigJson: '{"runId":"run-b"}',
      modelFingerprint: 'fp',
      heartbeatIntervalMs: 200,
      heartbeatTimeoutMs: 60_000,
      helloTimeoutMs: 500,
      maxCreditsPerWorker: 5,
      security: { kind: 'insecure' },
      events: silentEvents,
    });
  });
  after(() => server?.close());

  it('deals a peer that asks for a million credits no more than the cap', async () => {
    const client = new CoordinatorClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    const call = client.session();
    const got: CoordinatorMessage[] = [];
    // Everything one Credit deals is written before the next heartbeat on the same stream.
    await new Promise<void>((resolve) => {
      let credited = false;
      call.on('data', (m: CoordinatorMessage) => {
        got.push(m);
        const c = m.body?.$case;
        if (c === 'welcome') call.write({ body: { $case: 'ready', value: { modelFingerprint: 'fp' } } });
        if (c === 'stateSync') {
          call.write({ body: { $case: 'credit', value: { credits: 1_000_000 } } });
          credited = true;
        }
        if (c === 'heartbeat' && credited && got.some((x) => x.body?.$case === 'microBatch')) resolve();
      });
      call.write({ body: { $case: 'hello', value: hello('greedy', 1_000_000) } });
    });
    call.on('error', () => {});
    call.cancel();
    client.close();
    assert.equal(got.filter((m) => m.body?.$case === 'microBatch').length, 5);
  });

  it('ends a stream that never says Hello', async () => {
    const client = new CoordinatorClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    const call = client.session();
    const code = await new Promise<number | undefined>((resolve) => {
      call.on('data', () => {});
      call.on('error', (e: Error & { code?: number }) => resolve(e.code));
    });
    client.close();
    assert.equal(code, status.DEADLINE_EXCEEDED);
  });

  it('closes a connection that opens no stream at all', async () => {
    const session = http2Connect(`http://127.0.0.1:${server.port}`);
    session.on('error', () => {});
    await new Promise<void>((resolve) => session.on('close', () => resolve()));
    assert.ok(session.closed || session.destroyed);
  });

  it('refuses more workers than --max_workers (retryable) and a dropped worker for good', () => {
    const connected = new Set(['a', 'b']);
    assert.equal(refusalOf(hello('c'), 'r', connected, { maxWorkers: 2 })?.retryable, true);
    assert.equal(refusalOf(hello('c'), 'r', connected, { maxWorkers: 3 }), undefined);
    const dropped = refusalOf(hello('c'), 'r', connected, { dropped: new Set(['c']) });
    assert.equal(dropped?.retryable, false);
    assert.match(dropped!.reason, /dropped/);
  });
});

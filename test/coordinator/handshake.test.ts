import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { credentials } from '@grpc/grpc-js';
import { type CoordinatorServer, startCoordinatorServer } from '../../src/coordinator/grpc-server.ts';
import { StepDriver } from '../../src/coordinator/step-driver.ts';
import { silentEvents } from '../../src/events/events.ts';
import {
  CoordinatorClient,
  type CoordinatorMessage,
  type WorkerMessage,
} from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { PROTOCOL_VERSION } from '../../src/protocol/handshake.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';

// The handshake over real gRPC on loopback: what a mismatched worker hears, and that a matching
// one is welcomed with the run config and made a replica.

describe('coordinator handshake', () => {
  let server: CoordinatorServer;
  let driver: StepDriver;
  const clients: CoordinatorClient[] = [];

  before(async () => {
    const layout = paramLayout([{ name: 'a', shape: [2, 2] }]);
    driver = new StepDriver({
      runId: 'run-h',
      modelFingerprint: 'fp-good',
      totalSteps: 1,
      minWorkers: 5, // nobody gets work: only the handshake is under test
      maxGradNorm: 1,
      evalSteps: 100,
      replica: new AdapterReplica(layout, Float32Array.of(1, 2, 3, 4)),
      microBatches: () => [],
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
      runId: 'run-h',
      runConfigJson: '{"runId":"run-h"}',
      modelFingerprint: 'fp-good',
      heartbeatIntervalMs: 1000,
      security: { kind: 'insecure' },
      heartbeatTimeoutMs: 10_000,
      events: silentEvents,
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.close();
  });

  /** Opens a session, sends `first` (and `then` after the Welcome), collects what comes back until `until` or the end. */
  function session(first: WorkerMessage, then?: WorkerMessage, until?: (m: CoordinatorMessage) => boolean) {
    const client = new CoordinatorClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    clients.push(client);
    const call = client.session();
    const got: CoordinatorMessage[] = [];
    const done = new Promise<CoordinatorMessage[]>((resolve) => {
      call.on('data', (m: CoordinatorMessage) => {
        got.push(m);
        if (m.body?.$case === 'welcome' && then) call.write(then);
        if (until?.(m)) resolve(got);
      });
      call.on('end', () => resolve(got));
      call.on('error', () => resolve(got));
    });
    call.write(first);
    return { done, call };
  }

  const hello = (workerId: string, protocolVersion = PROTOCOL_VERSION): WorkerMessage => ({
    body: { $case: 'hello', value: { protocolVersion, runId: '', workerId } },
  });
  const reason = (ms: CoordinatorMessage[]) => {
    const last = ms.at(-1)?.body;
    assert.equal(last?.$case, 'refused');
    return last.value.reason;
  };

  it('refuses another protocol version and says to run the same lora-mpt version', async () => {
    const { done } = session(hello('old', PROTOCOL_VERSION + 1));
    assert.match(
      reason(await done),
      new RegExp(
        `protocol version ${PROTOCOL_VERSION + 1} does not match the coordinator's ${PROTOCOL_VERSION}; run the same lora-mpt version`,
      ),
    );
  });

  it('refuses a first message that is not Hello', async () => {
    const { done } = session({ body: { $case: 'heartbeat', value: { unixMs: 1 } } });
    assert.match(reason(await done), /the first message must be Hello, not heartbeat/);
  });

  it('welcomes a matching worker with the run config and makes it a replica of the current state', async () => {
    const ready: WorkerMessage = { body: { $case: 'ready', value: { modelFingerprint: 'fp-good' } } };
    const { done, call } = session(hello('w-good'), ready, (m) => m.body?.$case === 'stateSync');
    const got = await done;
    const welcome = got.find((m) => m.body?.$case === 'welcome')?.body;
    assert.ok(welcome?.$case === 'welcome');
    assert.equal(welcome.value.runConfigJson, '{"runId":"run-h"}');
    assert.equal(welcome.value.modelFingerprint, 'fp-good');
    const sync = got.at(-1)?.body;
    assert.ok(sync?.$case === 'stateSync');
    assert.deepEqual(Array.from(new Float32Array(new Uint8Array(sync.value.params).buffer)), [1, 2, 3, 4]);
    assert.equal(
      sync.value.checksum,
      new AdapterReplica(paramLayout([{ name: 'a', shape: [2, 2] }]), Float32Array.of(1, 2, 3, 4)).checksum(),
    );

    // A second session under the same id while this one lives is refused, naming the fix.
    const dup = session(hello('w-good'));
    assert.match(
      reason(await dup.done),
      /worker id "w-good" is already connected; give every worker its own id/,
    );
    call.end();
  });

  it('refuses a worker whose base model differs, naming both fingerprints', async () => {
    const ready: WorkerMessage = { body: { $case: 'ready', value: { modelFingerprint: 'fp-other' } } };
    const { done } = session(hello('w-bad'), ready);
    assert.match(reason(await done), /base model mismatch: .*fp-other.*fp-good/);
    assert.ok(!driver.members.has('w-bad'));
  });
});

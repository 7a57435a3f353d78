import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  type CoordinatorMessage,
  CoordinatorService,
  type WorkerMessage,
} from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { finishedMessage, welcomeMessage } from '../../src/protocol/messages.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { runWorkerSession } from '../../src/worker/session.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { recordEvents } from '../support/recorded-events.ts';
import { testRunConfig } from '../support/run-config.ts';

// A worker that joins in a run's last moments is still loading its model when the run ends. The
// coordinator says Finished once, ends the stream and exits; a worker that dropped that message (it
// had no replica yet) reconnected to nobody for ever (seen in CI: connection-flood's late worker).
// The coordinator here is scripted on a real gRPC server: Welcome, then Finished at once.

const run = testRunConfig('run-late');
const layout = paramLayout([{ name: 'a', shape: [2] }]);

describe('a run that ends while a worker is still loading its model', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let server: Server;
  let port = 0;
  const seen: string[] = [];
  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    server = new Server();
    server.addService(CoordinatorService, {
      session: (call: ServerDuplexStream<WorkerMessage, CoordinatorMessage>) => {
        call.on('data', (msg: WorkerMessage) => {
          const kind = msg.body?.$case ?? 'empty';
          seen.push(kind);
          if (kind !== 'hello') return;
          call.write(
            welcomeMessage({
              runId: run.runId,
              workerId: 'late',
              runConfigJson: JSON.stringify(run),
              modelFingerprint: 'fp',
              step: 1,
              heartbeatIntervalMs: 60_000,
            }),
          );
          call.write(finishedMessage(1, 'finished 1 steps'));
          call.end();
        });
        call.on('error', () => {});
      },
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  });
  after(async () => {
    server?.forceShutdown();
    await nc?.close();
    await nats?.stop();
  });

  it('ends its session as finished, never sends Ready, and does not reconnect', async () => {
    const recorded = recordEvents();
    let release: () => void = () => {};
    const loaded = new Promise<void>((r) => (release = r));
    const session = runWorkerSession({
      coordinator: `127.0.0.1:${port}`,
      security: { kind: 'insecure' },
      workerId: 'late',
      backend: 'test',
      maxInFlight: 1,
      nc,
      events: recorded.events,
      backoffInitialMs: 50,
      // Without the fix the worker retries; this turns that into a failure instead of a hang.
      giveUpAfterMs: 3_000,
      // The model loads until the test lets it: the Finished arrives before it is ready.
      prepare: async () => {
        await loaded;
        return {
          compute: {
            setAdapter() {},
            train: async () => ({ lossSum: 0, tokens: 0, grad: new Float32Array(2) }),
            evaluate: async () => ({ lossSum: 0, tokens: 0 }),
          },
          layout,
          fingerprint: 'fp',
        };
      },
    });
    const settled = session.then(
      () => 'finished',
      (err: Error) => `failed: ${err.message}`,
    );
    // Let the Welcome and the Finished arrive while the model is still loading, then finish loading.
    await new Promise((r) => setTimeout(r, 300));
    release();
    assert.equal(await settled, 'finished');
    assert.deepEqual(seen, ['hello'], 'one Hello, no Ready, no second session');
    assert.ok(
      recorded.records.some((r) => r.name === 'run_finished'),
      'the worker says the run is over',
    );
    assert.ok(!recorded.records.some((r) => r.name === 'reconnecting'));
  });
});

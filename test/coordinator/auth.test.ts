import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { RunCredentials } from '../../src/cli/certs.ts';
import { type CoordinatorServer, startCoordinatorServer } from '../../src/coordinator/grpc-server.ts';
import { StepDriver } from '../../src/coordinator/step-driver.ts';
import { mintWorkerToken } from '../../src/protocol/credentials.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';
import { attemptSession, channel, testCredentials } from '../support/certs.ts';
import { recordEvents } from '../support/recorded-events.ts';

// Server TLS without client certificates (no --tls_client_ca): the worker token alone names the
// worker. Real TLS and gRPC on loopback; the step driver is the product's.
describe('coordinator over TLS with worker tokens', () => {
  let dir: string;
  let creds: RunCredentials;
  let server: CoordinatorServer;
  let runToken: string;
  const recorded = recordEvents();
  let failures = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lora-mpt-auth-'));
    creds = testCredentials(dir, []);
    runToken = readFileSync(creds.runToken, 'utf8').trim();
    const driver = new StepDriver({
      runId: 'run-t',
      modelFingerprint: 'fp',
      totalSteps: 1,
      minWorkers: 5,
      maxGradNorm: 1,
      evalSteps: 100,
      replica: new AdapterReplica(paramLayout([{ name: 'a', shape: [2] }]), Float32Array.of(1, 2)),
      microBatches: () => [],
      evalMicroBatches: [],
      learningRate: () => 0,
      observerId: 'coordinator',
      algorithm: 'shard-owner',
      observeReduce: () => new Promise(() => {}),
      onCommit: async () => {},
      onEval: async () => {},
      afterStep: async () => {},
      events: recorded.events,
    });
    server = await startCoordinatorServer({
      listen: '127.0.0.1:0',
      driver,
      runId: 'run-t',
      runConfigJson: '{"runId":"run-t"}',
      modelFingerprint: 'fp',
      heartbeatIntervalMs: 1000,
      heartbeatTimeoutMs: 10_000,
      security: {
        kind: 'tls',
        cert: readFileSync(creds.coordinatorCert),
        key: readFileSync(creds.coordinatorKey),
        runToken,
      },
      onAuthFailure: () => failures++,
      events: recorded.events,
    });
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const tls = (bearer?: string) =>
    channel({ ca: readFileSync(creds.ca), ...(bearer === undefined ? {} : { bearer }) });
  const at = () => `127.0.0.1:${server.port}`;

  it('welcomes a worker token under the id it was minted for, whatever the Hello says is empty', async () => {
    const a = await attemptSession(at(), tls(mintWorkerToken(runToken, 'node-7')), '');
    assert.equal(a.messages[0]?.body?.$case, 'welcome');
    assert.equal((a.messages[0]!.body!.value as { workerId: string }).workerId, 'node-7');
  });

  it('refuses the run token alone: without a client certificate it names no worker', async () => {
    const before = failures;
    const a = await attemptSession(at(), tls(runToken));
    assert.deepEqual(a.messages, []);
    assert.equal(a.code, status.UNAUTHENTICATED);
    assert.equal(failures, before + 1);
  });

  it('refuses a worker token whose Hello claims another id', async () => {
    const a = await attemptSession(at(), tls(mintWorkerToken(runToken, 'node-8')), 'node-9');
    assert.deepEqual(
      a.messages.map((m) => m.body?.$case),
      ['refused'],
    );
  });

  it('echoes a long or line-breaking worker id only cut short and escaped', async () => {
    const id = `${'x'.repeat(100_000)}\n{"event":"run_finished"}`;
    const a = await attemptSession(at(), tls(mintWorkerToken(runToken, 'node-1')), id);
    const reason = (a.messages[0]!.body!.value as { reason: string }).reason;
    assert.ok(reason.length < 600, `reason of ${reason.length} characters`);
    assert.ok(!reason.includes('\n'));
    const logged = recorded.records.filter((r) => r.name === 'worker_refused').at(-1)!;
    assert.ok(logged.text.length < 1200 && !logged.text.includes('\n'));
  });

  it('fails a message larger than a worker ever sends before buffering it', async () => {
    const a = await attemptSession(at(), tls(mintWorkerToken(runToken, 'node-2')), 'y'.repeat(8 * 2 ** 20));
    assert.deepEqual(a.messages, []);
    assert.equal(a.code, status.RESOURCE_EXHAUSTED);
  });
});

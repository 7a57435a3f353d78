import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { RunCredentials } from '../../src/cli/certs.ts';
import { type CoordinatorServer, startCoordinatorServer } from '../../src/coordinator/grpc-server.ts';
import { StepDriver } from '../../src/coordinator/step-driver.ts';
import { makeLeaf } from '../../src/protocol/certificates.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';
import { attemptSession, channel, testCredentials } from '../support/certs.ts';
import { recordEvents } from '../support/recorded-events.ts';

const FLOOD = 2_000;

// A real coordinator endpoint over mutual TLS on loopback (the product's gRPC server and step
// driver): what refused peers cost it in log lines, and which certificates make a member.
describe('refused peers', () => {
  let dir: string;
  let mine: RunCredentials;
  let other: RunCredentials;
  let server: CoordinatorServer;
  const recorded = recordEvents();
  const failures: string[] = [];
  const file = (p: string) => readFileSync(p);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lora-mpt-refused-'));
    mine = testCredentials(join(dir, 'mine'), ['w0']);
    // Another run of the same CA: its CA files copied, a new run token drawn.
    mkdirSync(join(dir, 'other'));
    for (const f of ['ca.crt', 'ca.key']) copyFileSync(join(dir, 'mine', f), join(dir, 'other', f));
    other = testCredentials(join(dir, 'other'), ['w0']);
    const driver = new StepDriver({
      runId: 'run-r',
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
      runId: 'run-r',
      runConfigJson: '{"runId":"run-r"}',
      modelFingerprint: 'fp',
      heartbeatIntervalMs: 1000,
      heartbeatTimeoutMs: 10_000,
      security: {
        kind: 'tls',
        cert: file(mine.coordinatorCert),
        key: file(mine.coordinatorKey),
        clientCa: file(mine.ca),
        runToken: readFileSync(mine.runToken, 'utf8').trim(),
      },
      onAuthFailure: (reason) => failures.push(reason),
      events: recorded.events,
    });
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const address = () => `127.0.0.1:${server.port}`;
  const token = (c: RunCredentials) => readFileSync(c.runToken, 'utf8').trim();
  const w0 = (c: RunCredentials) => ({
    ca: file(mine.ca),
    cert: file(c.workers.get('w0')!.cert),
    key: file(c.workers.get('w0')!.key),
  });

  it('counts refusals at the TLS level by reason: no client certificate, one of another CA, plaintext', async () => {
    const stranger = testCredentials(join(dir, 'stranger'), ['w0']);
    const before = failures.length;
    const tries = [
      await attemptSession(address(), channel({ ca: file(mine.ca), bearer: token(mine) })),
      await attemptSession(address(), channel({ ...w0(stranger), bearer: token(mine) })),
      await attemptSession(address(), channel({})),
    ];
    for (const t of tries) assert.deepEqual(t.messages, []);
    const reasons = failures.slice(before).sort();
    assert.ok(reasons.includes('no_client_certificate'), reasons.join());
    assert.ok(reasons.includes('bad_client_certificate'), reasons.join());
    assert.ok(reasons.includes('tls_handshake'), reasons.join());
    assert.ok(
      recorded.records.some((r) => r.name === 'tls_refused' && r.fields.reason === 'no_client_certificate'),
    );
  });

  it("refuses a certificate of another run of the same CA, even with this run's token", async () => {
    const stolen = await attemptSession(address(), channel({ ...w0(other), bearer: token(mine) }));
    assert.deepEqual(stolen.messages, []);
    assert.equal(stolen.code, status.UNAUTHENTICATED);
    assert.match(stolen.details ?? '', /another run/);
    // A certificate of this CA that names no run (made before runs were named) is refused too.
    const ca = {
      cert: readFileSync(mine.ca, 'utf8'),
      key: readFileSync(join(dir, 'mine', 'ca.key'), 'utf8'),
    };
    const unbound = makeLeaf(ca, { commonName: 'w0', days: 1, usage: 'client' });
    const bare = await attemptSession(
      address(),
      channel({
        ca: file(mine.ca),
        cert: Buffer.from(unbound.cert),
        key: Buffer.from(unbound.key),
        bearer: token(mine),
      }),
    );
    assert.equal(bare.code, status.UNAUTHENTICATED);
    assert.match(bare.details ?? '', /names no run/);
    assert.equal(failures.filter((r) => r === 'certificate_run').length, 2);
    // This run's own certificate with its token is welcomed.
    const ok = await attemptSession(address(), channel({ ...w0(mine), bearer: token(mine) }));
    assert.deepEqual(
      ok.messages.map((m) => m.body?.$case),
      ['welcome'],
    );
  });

  it(`writes a few warnings and one count for ${FLOOD} unauthenticated streams, and counts every one`, async () => {
    const before = failures.filter((r) => r === 'token').length;
    const said = () => recorded.records.filter((r) => r.name === 'auth_refused').length;
    const saidBefore = said();
    // One TLS connection (a valid certificate of this run), a wrong token on every stream.
    const creds = channel({ ...w0(mine), bearer: 'x'.repeat(43) });
    for (let i = 0; i < FLOOD; i += 200) {
      await Promise.all(Array.from({ length: 200 }, () => attemptSession(address(), creds)));
    }
    assert.equal(failures.filter((r) => r === 'token').length - before, FLOOD);
    await server.close(); // says what each window suppressed
    const written = said() - saidBefore;
    const summaries = recorded.records.filter(
      (r) => r.name === 'warnings_suppressed' && r.fields.suppressed_event === 'auth_refused',
    );
    const suppressed = summaries.reduce((n, r) => n + Number(r.fields.count), 0);
    assert.ok(written <= 5 * (summaries.length + 1), `${written} auth_refused lines`);
    // Every refusal since the window opened is either written or counted in a summary.
    const windowTotal = written + suppressed;
    assert.ok(
      windowTotal >= FLOOD && windowTotal <= FLOOD + saidBefore,
      `${written} written + ${suppressed} counted`,
    );
    assert.match(summaries.at(-1)!.text, /^\.\.\. and [\d,]+ more auth_refused in the last \d+ s$/);
  });
});

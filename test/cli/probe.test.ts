import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { RunCredentials } from '../../src/cli/certs.ts';
import { type MetricsServer, serveMetrics } from '../../src/metrics/http-server.ts';
import { natsUsers, testCredentials } from '../support/certs.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';

// `lora-mpt probe` (the chart's helm test) against a real nats-server with TLS and per-user
// subjects, and the HTTP server the coordinator really serves /healthz from.
describe('lora-mpt probe', () => {
  let dir: string;
  let creds: RunCredentials;
  let users: ReturnType<typeof natsUsers>;
  let nats: NatsServer;
  let http: MetricsServer;
  let unhealthy: string | undefined;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lora-mpt-probe-'));
    creds = testCredentials(join(dir, 'creds'), []);
    // `run` may use lora.probe.> (the probe's default prefix); `elsewhere` only another run's subjects.
    users = natsUsers(creds, 'probe', ['run']);
    const elsewhere = { user: 'elsewhere', password: 'elsewhere-password', subjects: ['lora.other-run.>'] };
    writeFileSync(join(dir, 'elsewhere'), `${elsewhere.password}\n`);
    writeFileSync(join(dir, 'wrong'), 'not-the-password\n');
    nats = await startNats({ users: [...users.users, elsewhere], tls: users.tls });
    http = await serveMetrics({ registry: new Registry(), port: 0, unhealthyReason: () => unhealthy });
  });
  after(async () => {
    await http?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const probe = async (o: { user?: string; password?: string; ca?: string } = {}) => {
    const p = startLoraMpt('probe', [
      'probe',
      '--coordinator_url',
      `http://127.0.0.1:${http.port}`,
      '--nats',
      nats.url,
      '--nats_user',
      o.user ?? 'run',
      '--nats_password_file',
      o.password ?? join(creds.dir, 'run.nats-password'),
      '--nats_ca',
      o.ca ?? creds.ca,
      '--timeout_ms',
      '3000',
    ]);
    const code = await p.exited();
    // One event per check, in order: what a log pipeline (or `helm test --logs`) reads.
    const checks = p.events().filter((e) => e.event === 'probe_passed' || e.event === 'probe_failed');
    const of = (check: string) => checks.find((e) => e.check === check);
    return { code, out: p.output(), checks, of };
  };

  it("passes when /healthz answers 200 and the run's user makes a NATS round trip over TLS", async () => {
    unhealthy = undefined;
    const r = await probe();
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(
      r.checks.map((e) => [e.event, e.check]),
      [
        ['probe_passed', 'coordinator'],
        ['probe_passed', 'nats'],
      ],
    );
    assert.match(r.of('coordinator')!.msg, /^coordinator: GET http:\/\/127\.0\.0\.1:\d+\/healthz: 200 ok$/);
    assert.match(r.of('nats')!.msg, /user run published and received on lora\.probe\./);
  });

  it('fails naming the coordinator when /healthz answers 503', async () => {
    unhealthy = 'no step committed for 900 s';
    const r = await probe();
    unhealthy = undefined;
    assert.equal(r.code, 1, r.out);
    assert.equal(r.of('coordinator')?.event, 'probe_failed');
    assert.match(r.of('coordinator')!.msg, /GET .*\/healthz: HTTP 503 no step committed for 900 s$/);
    assert.equal(r.of('nats')?.event, 'probe_passed');
  });

  it('fails naming NATS for a wrong password', async () => {
    const r = await probe({ password: join(dir, 'wrong') });
    assert.equal(r.code, 1, r.out);
    assert.equal(r.of('coordinator')?.event, 'probe_passed');
    assert.equal(r.of('nats')?.event, 'probe_failed');
    assert.match(r.of('nats')!.msg, /Authorization Violation/i);
  });

  it("fails naming NATS for a user who may not use the run's subjects", async () => {
    const r = await probe({ user: 'elsewhere', password: join(dir, 'elsewhere') });
    assert.equal(r.code, 1, r.out);
    assert.equal(r.of('nats')?.event, 'probe_failed');
    assert.match(r.of('nats')!.msg, /^nats: Permissions Violation for Subscription to "lora\.probe\./);
  });

  it('fails for a server certificate the CA did not sign', async () => {
    const other = testCredentials(join(dir, 'other'), []);
    const r = await probe({ ca: other.ca });
    assert.equal(r.code, 1, r.out);
    assert.equal(r.of('nats')?.event, 'probe_failed');
    assert.match(r.of('nats')!.msg, /^nats: unable to verify the first certificate$/);
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { RunCredentials } from '../../src/cli/certs.ts';
import { assertSameAdapter } from '../support/adapters.ts';
import { attemptSession, channel, secureFlags, testCredentials } from '../support/certs.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { assertLedgersWhole, faultTraining, stepRecords, writeReference } from '../support/fault-run.ts';
import { scrape } from '../support/metrics.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

// Real processes, real TLS on loopback (docs/security.md): a run over mutual TLS with tokens ends
// with the fault-free adapter, and every stream without a valid credential gets nothing at all.
describe('authenticated gRPC', () => {
  let run: TinyRun;
  let nats: NatsServer;
  let reference: string;
  let creds: RunCredentials;
  let otherRun: RunCredentials;
  before(async () => {
    run = await tinyRun([200, 320]);
    nats = await startNats({ maxPayload: 64 * 1024 });
    reference = await writeReference(run);
    creds = testCredentials(join(run.dir, 'creds'), ['w0', 'w1', 'intruder']);
    otherRun = testCredentials(join(run.dir, 'other-run'), ['w0']);
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  const file = (p: string) => readFileSync(p);

  it('refuses streams without a valid credential before they get anything, then trains over mutual TLS', async () => {
    const out = join(run.dir, 'secure');
    const secure = secureFlags(creds);
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: faultTraining(run, out),
      workers: [],
      minWorkers: 2,
      secure,
    });
    const started = await d.coordinator.waitForEvent('run_started');
    const address = `127.0.0.1:${d.grpcPort}`;
    const w0 = creds.workers.get('w0')!;
    const mine = { ca: file(creds.ca), cert: file(w0.cert), key: file(w0.key) };
    try {
      const tries = {
        'no client certificate': await attemptSession(
          address,
          channel({ ca: mine.ca, bearer: readFileSync(w0.token, 'utf8').trim() }),
        ),
        plaintext: await attemptSession(address, channel({})),
        'a certificate of another CA': await attemptSession(
          address,
          channel({
            ca: mine.ca,
            cert: file(otherRun.workers.get('w0')!.cert),
            key: file(otherRun.workers.get('w0')!.key),
            bearer: readFileSync(creds.runToken, 'utf8').trim(),
          }),
        ),
        'no token': await attemptSession(address, channel(mine)),
        'a wrong token': await attemptSession(address, channel({ ...mine, bearer: 'x'.repeat(43) })),
        "another run's token": await attemptSession(
          address,
          channel({ ...mine, bearer: readFileSync(otherRun.workers.get('w0')!.token, 'utf8').trim() }),
        ),
      };
      for (const [what, a] of Object.entries(tries)) {
        assert.deepEqual(a.messages, [], `${what}: no Welcome, no state, no data`);
        assert.ok(a.code !== undefined && a.code !== status.OK, `${what}: the stream failed (${a.code})`);
      }
      for (const what of ['no token', 'a wrong token', "another run's token"] as const) {
        assert.equal(tries[what].code, status.UNAUTHENTICATED, what);
      }
      // Past TLS, the coordinator itself refused and counted the three token failures.
      assert.equal(await scrape(Number(started.metrics_port), 'lora_mpt_auth_failures_total'), 3);
      assert.equal(d.coordinator.events().filter((e) => e.event === 'auth_refused').length, 3);
      // An authenticated stream is named by its credential: its Hello cannot claim another id.
      const claim = await attemptSession(
        address,
        channel({ ...mine, bearer: readFileSync(creds.runToken, 'utf8').trim() }),
        'w1',
      );
      assert.deepEqual(
        claim.messages.map((m) => m.body?.$case),
        ['refused'],
      );
      // A real worker process with a valid certificate but another run's token exits refused.
      const intruder = d.startWorker('intruder', [
        '--token_file',
        otherRun.workers.get('w0')!.token,
        '--worker_id',
        'intruder',
      ]);
      assert.equal(await intruder.exited(), 3, intruder.output());
      assert.ok(intruder.events().some((e) => e.event === 'session_refused'));
      assert.ok(!intruder.events().some((e) => e.event === 'session_joined'));

      // w0: its certificate names it, the run token proves membership; w1: its own worker token.
      const a = d.startWorker('w0', ['--token_file', creds.runToken]);
      const b = d.startWorker('w1');
      for (const p of [d.coordinator, a, b]) assert.equal(await p.exited(), 0, `${p.name}:\n${p.output()}`);
      assert.ok(!d.coordinator.events().some((e) => e.event === 'insecure_transport'));
      const records = stepRecords(out);
      assertLedgersWhole(records, 4);
      assert.ok(
        records.some((r) => /w0:/.test(r.micro_batches_by_worker) && /w1:/.test(r.micro_batches_by_worker)),
      );
    } finally {
      await d.stop();
    }
    await assertSameAdapter(reference, out, 1e-5);
  });

  it('will not run without credentials unless told --insecure, and then says so loudly', async () => {
    const out = join(run.dir, 'no-creds');
    const args = ['coordinator', ...faultTraining(run, out), '--listen', '127.0.0.1:0', '--nats', nats.url];
    const refused = startLoraMpt('coordinator (no credentials)', [...args, '--metrics_port', '0']);
    assert.equal(await refused.exited(), 2, refused.output());
    assert.match(refused.output(), /--tls_cert and --tls_key/);
    const worker = startLoraMpt('worker (no credentials)', [
      'worker',
      '--nats',
      nats.url,
      '--metrics_port',
      '0',
    ]);
    assert.equal(await worker.exited(), 2, worker.output());
    assert.match(worker.output(), /--tls_ca/);
    const insecure = startLoraMpt('coordinator (insecure)', [...args, '--metrics_port', '0', '--insecure']);
    try {
      const e = await insecure.waitForEvent('insecure_transport', undefined, { ms: 120_000 });
      assert.equal(e.level, 'warn');
    } finally {
      await insecure.kill();
    }
  });
});

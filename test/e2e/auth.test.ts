import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { connect } from '@nats-io/transport-node';
import type { RunCredentials } from '../../src/cli/certs.ts';
import { encodeFrame, FrameKind, runHash } from '../../src/collective/frame.ts';
import { ctlSubject, dataSubject, type RoundKey } from '../../src/collective/subjects.ts';
import { assertSameAdapter } from '../support/adapters.ts';
import { attemptSession, channel, natsUsers, secureFlags, testCredentials } from '../support/certs.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { assertLedgersWhole, faultTraining, stepRecords, writeReference } from '../support/fault-run.ts';
import { scrape } from '../support/metrics.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

const RUN = 'secure-run';

/** A frame of `round` in member `from`'s name, made without the run's frame key: huge values, or an abort. */
function forgedFrame(round: RoundKey, kind: FrameKind, from: number, shard: number): Uint8Array {
  const header = {
    kind,
    runHash: runHash(round.runId),
    step: round.step,
    generation: round.generation,
    from,
    shard,
    chunk: 0,
    chunkCount: 1,
    offset: 0,
    totalLength: 0,
  };
  return kind === FrameKind.abort
    ? encodeFrame(header, new TextEncoder().encode('forged abort'))
    : encodeFrame(header, new Float32Array(16).fill(1e6));
}

// Real processes, real TLS on loopback (docs/security.md): a run over mutual TLS with tokens ends
// with the fault-free adapter, and every stream without a valid credential gets nothing at all.
describe('authenticated gRPC and NATS', () => {
  let run: TinyRun;
  let nats: NatsServer;
  let reference: string;
  let creds: RunCredentials;
  let otherRun: RunCredentials;
  let users: ReturnType<typeof natsUsers>;
  before(async () => {
    run = await tinyRun([200, 320]);
    reference = await writeReference(run);
    creds = testCredentials(join(run.dir, 'creds'), ['w0', 'w1', 'intruder']);
    otherRun = testCredentials(join(run.dir, 'other-run'), ['w0']);
    // The run's members may use lora.secure-run.> only; `other` is another run's user; `leaked` has
    // this run's NATS subjects (a leaked NATS password) but never joined over gRPC: no frame key.
    users = natsUsers(creds, RUN, ['coordinator', 'w0', 'w1', 'intruder', 'leaked']);
    const other = { user: 'other', password: 'other-password', subjects: ['lora.other-run.>'] };
    nats = await startNats({ maxPayload: 64 * 1024, users: [...users.users, other], tls: users.tls });
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
      trainingFlags: [...faultTraining(run, out), '--run_id', RUN],
      workers: [],
      minWorkers: 2,
      secure,
    });
    const tlsNats = { servers: nats.url, tls: { caFile: creds.ca } };
    const pw = (u: string) => users.users.find((x) => x.user === u)!.password;
    // Not a member: no user, no TLS, or another run's user reading everything.
    await assert.rejects(connect({ ...tlsNats, maxReconnectAttempts: 0 }), /Authorization Violation/i);
    await assert.rejects(connect({ servers: nats.url, user: 'w0', pass: pw('w0'), maxReconnectAttempts: 0 }));
    const reader = await connect({ ...tlsNats, user: 'other', pass: 'other-password' });
    let read = 0;
    const readerErrors: string[] = [];
    reader.subscribe('lora.>', {
      callback: (err) => {
        if (err) readerErrors.push(err.message);
        else read++;
      },
    });
    // A leaked NATS credential without the frame key: forges data and abort frames in the members'
    // names for every round it sees start.
    const forger = await connect({ ...tlsNats, user: 'leaked', pass: pw('leaked') });
    const forged = new Set<string>();
    forger.subscribe(`lora.${RUN}.*.*.ctl.*`, {
      callback: (_e, msg) => {
        const [, , s, g] = msg.subject.split('.');
        const round = { runId: RUN, step: Number(s!.slice(1)), generation: Number(g!.slice(1)) };
        if (forged.has(`${s}${g}`)) return;
        forged.add(`${s}${g}`);
        for (const from of [0, 1]) {
          forger.publish(ctlSubject(round, from), forgedFrame(round, FrameKind.abort, from, 0));
          for (const shard of [0, 1]) {
            forger.publish(
              dataSubject(round, 'so-rs', shard, from),
              forgedFrame(round, FrameKind.shardReduce, from, shard),
            );
            forger.publish(
              dataSubject(round, 'so-ag', shard, shard),
              forgedFrame(round, FrameKind.shardGather, shard, shard),
            );
          }
        }
      },
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
      assert.equal(
        await scrape(Number(started.metrics_port), 'lora_mpt_auth_failures_total', { reason: 'token' }),
        3,
      );
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
      // Forged frames are refused (counted, said once per round) and change nothing.
      const refused = await d.coordinator.waitForEvent('allreduce_frame_refused', undefined, { ms: 120_000 });
      assert.equal(refused.reason, 'auth');
      const counted = await scrape(Number(started.metrics_port), 'lora_mpt_allreduce_frames_refused_total', {
        reason: 'auth',
      });
      assert.ok((counted ?? 0) > 0, `counted ${counted}`);
      for (const p of [d.coordinator, a, b]) assert.equal(await p.exited(), 0, `${p.name}:\n${p.output()}`);
      assert.ok(forged.size > 0, 'the forger saw rounds start and forged frames for them');
      const refusals = [d.coordinator, a, b].flatMap((p) =>
        p.events().filter((e) => e.event === 'allreduce_frame_refused'),
      );
      assert.ok(
        refusals.every((e) => e.reason === 'auth'),
        'only forgeries were refused',
      );
      assert.ok(
        ![d.coordinator, a, b].some((p) =>
          p.events().some((e) => e.event === 'reduce_aborted' && /forged/.test(String(e.reason))),
        ),
        'no forged abort was taken',
      );
      await Promise.all([reader.close(), forger.close()]);
      assert.equal(read, 0, "another run's NATS user read none of this run's frames");
      assert.match(readerErrors.join(' '), /Permissions Violation/i);
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
    const plain = await startNats();
    const args = ['coordinator', ...faultTraining(run, out), '--listen', '127.0.0.1:0', '--nats', plain.url];
    const refused = startLoraMpt('coordinator (no credentials)', [...args, '--metrics_port', '0']);
    assert.equal(await refused.exited(), 2, refused.output());
    assert.match(refused.output(), /--tls_cert and --tls_key/);
    const worker = startLoraMpt('worker (no credentials)', [
      'worker',
      '--nats',
      plain.url,
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
      await plain.stop();
    }
  });
});

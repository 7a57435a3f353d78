import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { natsUsers, secureFlags, testCredentials } from '../support/certs.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { assertLedgersWhole, faultTraining, stepRecords } from '../support/fault-run.ts';
import { scrape } from '../support/metrics.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { type TinyRun, tinyRun } from '../support/tiny-run.ts';

const RUN = 'flood-run';
const FLOOD = 600;

/** Opens `n` TCP connections that never speak; resolves once each connected or failed. */
async function idleConnections(port: number, n: number): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve) => {
          const s = connect(port, '127.0.0.1');
          s.on('error', () => {});
          s.once('connect', () => resolve(s));
          s.once('close', () => resolve(s));
        }),
    ),
  );
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never: ${what}`);
}

// A real coordinator whose open-file limit is 256 (soft and hard: it cannot raise it), over mutual
// TLS, flooded with 600 idle TCP connections that never start a handshake (issue #23: 1,100 such
// connections crashed a coordinator with a limit of 1024, EMFILE on metrics.jsonl).
describe('a connection flood before authentication', () => {
  let run: TinyRun;
  let nats: NatsServer;
  before(async () => {
    run = await tinyRun([200, 320]);
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  it('leaves a coordinator limited to 256 open files up, serving a worker, the refusals counted', async () => {
    const creds = testCredentials(join(run.dir, 'creds'), ['w0', 'w1']);
    const users = natsUsers(creds, RUN, ['coordinator', 'w0', 'w1']);
    nats = await startNats({ users: users.users, tls: users.tls });
    const out = join(run.dir, 'out');
    const d = await startDistributedRun(
      {
        natsUrl: nats.url,
        trainingFlags: [...faultTraining(run, out), '--run_id', RUN],
        workers: [],
        minWorkers: 1,
        secure: secureFlags(creds),
      },
      (name, args) =>
        startLoraMpt(name, args, {}, name === 'coordinator' ? ['prlimit', '--nofile=256:256'] : []),
    );
    let flood: Socket[] = [];
    // w0 trains slowly, so the flood lands mid-run: steps commit (metrics.jsonl, checkpoints) under it.
    const w0 = d.startWorker('w0', ['--inject_fault', 'slow_ms=800']);
    try {
      const files = d.coordinator.events().find((e) => e.event === 'open_files');
      assert.equal(files?.soft, 256, 'the coordinator runs with the lowered limit');
      const metricsPort = Number(d.coordinator.events().find((e) => e.event === 'run_started')?.metrics_port);
      await d.coordinator.waitForEvent('step_committed', undefined, { ms: 120_000 });
      flood = await idleConnections(d.grpcPort, FLOOD);
      // A worker that joins during the flood gets in once the handshake deadline frees places.
      const w1 = d.startWorker('w1');
      const capped = await until('connections refused at the pending-handshake cap', async () => {
        const n = await scrape(metricsPort, 'lora_mpt_connections_refused_total', {
          reason: 'pending_handshakes',
        });
        return n !== undefined && n > 0 ? n : undefined;
      });
      // The ones let in never handshake: each is refused at the deadline and counted as a TLS refusal.
      const timedOut = await until('handshakes abandoned at the deadline', async () => {
        const n = await scrape(metricsPort, 'lora_mpt_auth_failures_total', { reason: 'handshake_timeout' });
        return n !== undefined && n > 0 ? n : undefined;
      });
      assert.ok(capped + timedOut <= FLOOD, `${capped} capped + ${timedOut} timed out`);
      // Said a few times per window, not once per connection.
      const said = d.coordinator.events().filter((e) => e.event === 'connection_refused').length;
      assert.ok(said < capped, `${said} warnings for ${capped} refusals`);
      await d.coordinator.waitForEvent('worker_joined', (e) => e.worker === 'w1', { ms: 120_000 });
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      for (const w of [w0, w1]) assert.equal(await w.exited(), 0, w.output());
      assertLedgersWhole(stepRecords(out), 4);
    } finally {
      for (const s of flood) s.destroy();
      await d.stop();
    }
  });

  it('holds its hard open-file limit from the start (Node raises the soft one)', () => {
    const script = `import { openFileLimit } from ${JSON.stringify(new URL('../../src/cli/open-files.ts', import.meta.url).href)};
      process.stdout.write(JSON.stringify(openFileLimit()));`;
    const got = JSON.parse(
      execFileSync(
        'prlimit',
        ['--nofile=256:2048', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script],
        {
          encoding: 'utf8',
        },
      ),
    );
    assert.deepEqual(got, { soft: 2048, hard: 2048 });
  });
});

// A run's credentials for tests, made by the product's own `lora-mpt certs` code, and a gRPC client
// that tries a Session the way an intruder would: it sends a Hello and records everything that
// comes back (a refused stream must get nothing but its error status).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChannelCredentials, credentials, Metadata } from '@grpc/grpc-js';
import { type RunCredentials, writeRunCredentials } from '../../src/cli/certs.ts';
import type { NatsUser } from '../../src/cli/local-nats.ts';
import { CoordinatorClient, type CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { PROTOCOL_VERSION } from '../../src/protocol/handshake.ts';

export function testCredentials(dir: string, workers: readonly string[]): RunCredentials {
  return writeRunCredentials(dir, { hosts: ['localhost', '127.0.0.1'], workers, days: 1 });
}

/**
 * NATS users for a run: `coordinator` and each worker, allowed only `lora.<runId>.>`, each with a
 * random password written to `<dir>/<user>.nats-password`; the server's TLS certificate is the
 * coordinator's (valid for 127.0.0.1).
 */
export function natsUsers(c: RunCredentials, runId: string, users: readonly string[]) {
  const list: NatsUser[] = users.map((user) => ({
    user,
    password: randomBytes(18).toString('base64url'),
    subjects: [`lora.${runId}.>`],
  }));
  for (const u of list) writeFileSync(passwordFile(c, u.user), `${u.password}\n`, { mode: 0o600 });
  return { users: list, tls: { certFile: c.coordinatorCert, keyFile: c.coordinatorKey } };
}

const passwordFile = (c: RunCredentials, user: string) => join(c.dir, `${user}.nats-password`);

/** Flags for startDistributedRun's `secure`: mutual TLS, each worker with its own cert and worker token, NATS users and TLS. */
export function secureFlags(c: RunCredentials) {
  const nats = (user: string) => [
    '--nats_user',
    user,
    '--nats_password_file',
    passwordFile(c, user),
    '--nats_ca',
    c.ca,
  ];
  return {
    coordinator: [
      '--tls_cert',
      c.coordinatorCert,
      '--tls_key',
      c.coordinatorKey,
      '--tls_client_ca',
      c.ca,
      '--run_token_file',
      c.runToken,
      ...nats('coordinator'),
    ],
    worker: (id: string) => {
      const w = c.workers.get(id);
      if (!w) throw new Error(`no credentials made for worker ${id}`);
      return [
        '--tls_ca',
        c.ca,
        '--tls_cert',
        w.cert,
        '--tls_key',
        w.key,
        '--token_file',
        w.token,
        ...nats(id),
      ];
    },
  };
}

/** gRPC channel credentials: TLS against `ca`, an optional client certificate, an optional bearer. */
export function channel(o: {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  bearer?: string;
}): ChannelCredentials {
  if (!o.ca) return credentials.createInsecure();
  const tls = credentials.createSsl(o.ca, o.key ?? null, o.cert ?? null);
  if (o.bearer === undefined) return tls;
  const bearer = o.bearer;
  return credentials.combineChannelCredentials(
    tls,
    credentials.createFromMetadataGenerator((_p, cb) => {
      const md = new Metadata();
      md.set('authorization', `Bearer ${bearer}`);
      cb(null, md);
    }),
  );
}

export interface Attempt {
  readonly messages: readonly CoordinatorMessage[];
  /** gRPC status code of the error that ended the stream (undefined: it ended without one). */
  readonly code?: number;
  readonly details?: string;
}

/** Opens a Session, says Hello as `workerId`, and returns what came back before the stream ended. */
export function attemptSession(
  address: string,
  creds: ChannelCredentials,
  workerId = 'w0',
): Promise<Attempt> {
  const client = new CoordinatorClient(address, creds);
  const call = client.session();
  const messages: CoordinatorMessage[] = [];
  return new Promise<Attempt>((resolve) => {
    const finish = (a: Attempt) => {
      clearTimeout(timer);
      call.cancel();
      client.close();
      resolve(a);
    };
    // A Welcome would be followed by silence while it waits for Ready: stop there.
    const timer = setTimeout(() => finish({ messages }), 10_000);
    call.on('data', (m: CoordinatorMessage) => {
      messages.push(m);
      if (m.body?.$case === 'welcome' || m.body?.$case === 'refused') finish({ messages });
    });
    call.on('error', (e: Error & { code?: number; details?: string }) =>
      finish({
        messages,
        ...(e.code === undefined ? {} : { code: e.code }),
        ...(e.details ? { details: e.details } : {}),
      }),
    );
    call.on('end', () => finish({ messages }));
    call.write({
      body: {
        $case: 'hello',
        value: {
          protocolVersion: PROTOCOL_VERSION,
          runId: '',
          workerId,
          capabilities: { backend: 'test', deviceMemoryBytes: 0, maxInFlight: 1_000_000, nodeName: '' },
        },
      },
    });
  });
}

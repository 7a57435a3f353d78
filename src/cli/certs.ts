// `lora-mpt certs`: the credentials of a run's gRPC (docs/security.md) in one folder: a CA, the
// coordinator's certificate for the names workers reach it by, a client certificate per worker, the
// run token (the run's secret) and a worker token per worker. A folder that already holds a CA and a
// run token keeps them, so workers can be added to a run later. Keys and tokens are mode 0600.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type KeyAndCert, makeCa, makeLeaf } from '../protocol/certificates.ts';
import { checkRunToken, mintWorkerToken, newNatsPassword, newRunToken } from '../protocol/credentials.ts';
import { runBindingName } from '../protocol/run-binding.ts';
import { type Command, flagCommand } from './command.ts';
import { type FlagSpecs, type ParsedFlags, UsageError } from './flags.ts';
import { eventsFromFlags, reportLogFlags } from './log-flags.ts';

export const certsFlags = {
  out: {
    kind: 'string',
    default: 'lora-mpt-certs',
    help: 'Folder to write into (created; an existing CA and run token in it are kept).',
  },
  hosts: {
    kind: 'list',
    default: ['localhost', '127.0.0.1'],
    help: 'Names and IP addresses workers reach the coordinator by (its certificate is valid for these), e.g. [my-run-lora-mpt-coordinator,my-run-lora-mpt-coordinator.training.svc].',
  },
  workers: {
    kind: 'list',
    default: [],
    help: 'Worker ids to make a client certificate (<id>.crt, <id>.key; common name = id, and a DNS name <tag>.run.lora-mpt.invalid that binds it to this run) and a worker token (<id>.token) for.',
  },
  nats_hosts: {
    kind: 'list',
    default: [],
    help: "Names of the run's NATS server: nats.crt/nats.key are made for them (with nats-ca.crt, the CA workers check it with). Empty: none.",
  },
  days: { kind: 'int', default: 365, min: 1, help: 'Validity of the certificates, in days.' },
  ...reportLogFlags,
} as const satisfies FlagSpecs;

export interface RunCredentials {
  readonly dir: string;
  readonly ca: string;
  readonly coordinatorCert: string;
  readonly coordinatorKey: string;
  readonly runToken: string;
  /** The password of the run's NATS user. */
  readonly natsPassword: string;
  /** Per worker id: its certificate, key and worker token files. */
  readonly workers: ReadonlyMap<
    string,
    { readonly cert: string; readonly key: string; readonly token: string }
  >;
}

const write = (path: string, text: string, secret: boolean) =>
  writeFileSync(path, text, secret ? { mode: 0o600 } : {});

export function writeRunCredentials(
  dir: string,
  o: {
    readonly hosts: readonly string[];
    readonly workers: readonly string[];
    readonly days: number;
    readonly natsHosts?: readonly string[];
  },
): RunCredentials {
  mkdirSync(dir, { recursive: true });
  const caCert = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  let ca: KeyAndCert;
  if (existsSync(caCert) && existsSync(caKey)) {
    ca = { cert: readFileSync(caCert, 'utf8'), key: readFileSync(caKey, 'utf8') };
  } else {
    ca = makeCa('lora-mpt run CA', o.days);
    write(caCert, ca.cert, false);
    write(caKey, ca.key, true);
  }
  const tokenFile = join(dir, 'run-token');
  const runToken = existsSync(tokenFile)
    ? checkRunToken(readFileSync(tokenFile, 'utf8'), tokenFile)
    : newRunToken();
  if (!existsSync(tokenFile)) write(tokenFile, `${runToken}\n`, true);
  const server = makeLeaf(ca, {
    commonName: 'lora-mpt-coordinator',
    days: o.days,
    hosts: o.hosts,
    usage: 'server',
  });
  write(join(dir, 'coordinator.crt'), server.cert, false);
  write(join(dir, 'coordinator.key'), server.key, true);
  const natsPassword = join(dir, 'nats-password');
  if (!existsSync(natsPassword)) write(natsPassword, `${newNatsPassword()}\n`, true);
  if (o.natsHosts && o.natsHosts.length > 0) {
    const nats = makeLeaf(ca, {
      commonName: 'lora-mpt-nats',
      days: o.days,
      hosts: o.natsHosts,
      usage: 'server',
    });
    write(join(dir, 'nats.crt'), nats.cert, false);
    write(join(dir, 'nats.key'), nats.key, true);
    write(join(dir, 'nats-ca.crt'), ca.cert, false);
  }
  const workers = new Map<string, { cert: string; key: string; token: string }>();
  for (const id of o.workers) {
    const token = mintWorkerToken(runToken, id); // checks the id
    // Bound to this run: a coordinator refuses a certificate of another run of the same CA.
    const leaf = makeLeaf(ca, {
      commonName: id,
      days: o.days,
      usage: 'client',
      hosts: [runBindingName(runToken)],
    });
    const files = {
      cert: join(dir, `${id}.crt`),
      key: join(dir, `${id}.key`),
      token: join(dir, `${id}.token`),
    };
    write(files.cert, leaf.cert, false);
    write(files.key, leaf.key, true);
    write(files.token, `${token}\n`, true);
    workers.set(id, files);
  }
  return {
    dir,
    ca: caCert,
    coordinatorCert: join(dir, 'coordinator.crt'),
    coordinatorKey: join(dir, 'coordinator.key'),
    runToken: tokenFile,
    natsPassword,
    workers,
  };
}

async function runCerts(f: ParsedFlags<typeof certsFlags>): Promise<number> {
  const events = eventsFromFlags(f, { label: '' });
  if (f.hosts.length === 0)
    throw new UsageError('--hosts: name at least one host the workers reach the coordinator by');
  let c: RunCredentials;
  try {
    c = writeRunCredentials(f.out, {
      hosts: f.hosts,
      workers: f.workers,
      days: f.days,
      natsHosts: f.nats_hosts,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const say = (text: string) => events.info('credentials_written', text, { dir: c.dir });
  say(
    `wrote ${c.dir}: ca.crt ca.key coordinator.crt coordinator.key run-token nats-password` +
      (f.nats_hosts.length > 0 ? ' nats.crt nats.key nats-ca.crt' : '') +
      [...c.workers.keys()].map((id) => ` ${id}.crt ${id}.key ${id}.token`).join(''),
  );
  say(
    `coordinator: --tls_cert ${c.coordinatorCert} --tls_key ${c.coordinatorKey} --tls_client_ca ${c.ca} --run_token_file ${c.runToken}`,
  );
  for (const [id, w] of c.workers) {
    say(`worker ${id}: --tls_ca ${c.ca} --tls_cert ${w.cert} --tls_key ${w.key} --token_file ${w.token}`);
  }
  return 0;
}

export const certsCommand: Command = flagCommand({
  name: 'certs',
  summary: 'make a CA, the coordinator and worker certificates, the run token and worker tokens',
  usage: 'lora-mpt certs --out DIR --hosts [NAME,...] --workers [ID,...]',
  description:
    'Writes what a run needs for authenticated gRPC and NATS (docs/security.md): ca.crt/ca.key, coordinator.crt/.key (valid for --hosts), <id>.crt/.key and <id>.token per worker, run-token, nats-password, and with --nats_hosts nats.crt/.key and nats-ca.crt. Prints the flags that use them.',
  flags: certsFlags,
  run: runCerts,
});

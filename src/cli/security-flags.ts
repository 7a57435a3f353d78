// The flags that protect the coordinator <-> worker stream (docs/security.md): certificate, key and
// CA files, the run token (a file, or an environment variable), and `--insecure`, the only way to run
// without them, which both processes announce loudly (an `insecure_transport` warning event).
import { readFileSync } from 'node:fs';
import type { Events } from '../events/events.ts';
import { checkRunToken } from '../protocol/credentials.ts';
import type { ClientSecurity, ServerSecurity } from '../protocol/transport.ts';
import { type FlagSpecs, UsageError } from './flags.ts';

/** Environment variable holding the run token (coordinator) when --run_token_file is not given. */
export const RUN_TOKEN_ENV = 'LORA_MPT_RUN_TOKEN';
/** Environment variable holding a worker's token when --token_file is not given. */
export const WORKER_TOKEN_ENV = 'LORA_MPT_TOKEN';
/** Environment variable holding the NATS password when --nats_password_file is not given. */
export const NATS_PASSWORD_ENV = 'LORA_MPT_NATS_PASSWORD';

/** NATS credentials and TLS: both processes connect to NATS the same way. */
export const natsSecurityFlags = {
  nats_user: {
    kind: 'string',
    help: "NATS user name (the server config allows it only the run's subjects).",
  },
  nats_password_file: {
    kind: 'string',
    help: `File holding the NATS password of --nats_user. Default: $${NATS_PASSWORD_ENV}.`,
  },
  nats_ca: {
    kind: 'string',
    help: "PEM CA of the NATS server's certificate: the connection is TLS, the server verified.",
  },
} as const satisfies FlagSpecs;

/** How to connect to NATS, as @nats-io/transport-node's connect options. */
export interface NatsSecurity {
  readonly user?: string;
  readonly pass?: string;
  readonly tls?: { readonly caFile: string };
}

/**
 * The NATS connection's credentials and TLS. Without --insecure a user, a password and a CA are
 * required: gradients are the run's data, and a NATS client that is not a member must neither read
 * nor publish them.
 */
export function natsSecurityOf(
  f: {
    readonly nats_user?: string | undefined;
    readonly nats_password_file?: string | undefined;
    readonly nats_ca?: string | undefined;
    readonly insecure: boolean;
  },
  vars: NodeJS.ProcessEnv,
): NatsSecurity {
  if (f.insecure) {
    conflicts(f, ['nats_user', 'nats_password_file', 'nats_ca']);
    return {};
  }
  if (f.nats_user === undefined || f.nats_ca === undefined) {
    throw new UsageError(
      'NATS needs --nats_user, a password (--nats_password_file or $LORA_MPT_NATS_PASSWORD) and --nats_ca (TLS); --insecure runs without, for tests and demos only',
    );
  }
  readPem('nats_ca', f.nats_ca);
  const pass = readToken('nats_password_file', f.nats_password_file, NATS_PASSWORD_ENV, vars);
  return { user: f.nats_user, pass, tls: { caFile: f.nats_ca } };
}

const insecure = {
  kind: 'bool',
  default: false,
  help: 'Plaintext gRPC and NATS with no credentials: anyone who reaches the ports can join the run, read its data and gradients and steer its training. For a laptop demo and tests only; said loudly at start.',
} as const;

export const coordinatorSecurityFlags = {
  ...natsSecurityFlags,
  tls_cert: {
    kind: 'string',
    help: 'PEM certificate (chain) of the gRPC endpoint (lora-mpt certs writes coordinator.crt).',
  },
  tls_key: { kind: 'string', help: 'PEM private key of --tls_cert.' },
  tls_client_ca: {
    kind: 'string',
    help: "PEM CA that signs worker certificates: workers must then present one (mutual TLS), and a worker is named by its certificate's common name.",
  },
  run_token_file: {
    kind: 'string',
    help: `File holding the run token, the run's secret that worker tokens are checked against (lora-mpt certs writes run-token). Default: $${RUN_TOKEN_ENV}.`,
  },
  insecure,
} as const satisfies FlagSpecs;

export const workerSecurityFlags = {
  ...natsSecurityFlags,
  tls_ca: {
    kind: 'string',
    help: "PEM CA that signed the coordinator's certificate (lora-mpt certs writes ca.crt).",
  },
  tls_cert: {
    kind: 'string',
    help: 'PEM certificate of this worker, for a coordinator that asks for mutual TLS.',
  },
  tls_key: { kind: 'string', help: 'PEM private key of --tls_cert.' },
  token_file: {
    kind: 'string',
    help: `File holding this worker's token (lora-mpt certs writes <id>.token), or the run token when --tls_cert names the worker. Default: $${WORKER_TOKEN_ENV}.`,
  },
  insecure,
} as const satisfies FlagSpecs;

function readPem(flag: string, path: string): Buffer {
  let b: Buffer;
  try {
    b = readFileSync(path);
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: ${(err as Error).message}`);
  }
  if (!b.includes('-----BEGIN ')) throw new UsageError(`--${flag} ${path}: not a PEM file`);
  return b;
}

function readToken(flag: string, path: string | undefined, env: string, vars: NodeJS.ProcessEnv): string {
  let raw: string | undefined;
  let where: string;
  if (path !== undefined) {
    where = `--${flag} ${path}`;
    try {
      raw = readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(`${where}: ${(err as Error).message}`);
    }
  } else {
    where = `$${env}`;
    raw = vars[env];
  }
  if (raw === undefined || raw.trim() === '') {
    throw new UsageError(
      `no token: pass --${flag} FILE or set $${env} (or --insecure, for tests and demos only)`,
    );
  }
  const t = raw.trim();
  return t.startsWith('Bearer ') ? t.slice(7) : t;
}

const conflicts = (f: Readonly<Record<string, unknown>>, names: readonly string[]) => {
  const given = names.filter((n) => f[n] !== undefined);
  if (given.length > 0) {
    throw new UsageError(`--insecure and ${given.map((n) => `--${n}`).join(', ')} contradict each other`);
  }
};

export function serverSecurityOf(
  f: {
    readonly tls_cert?: string | undefined;
    readonly tls_key?: string | undefined;
    readonly tls_client_ca?: string | undefined;
    readonly run_token_file?: string | undefined;
    readonly insecure: boolean;
  },
  vars: NodeJS.ProcessEnv,
): ServerSecurity {
  if (f.insecure) {
    conflicts(f, ['tls_cert', 'tls_key', 'tls_client_ca', 'run_token_file']);
    return { kind: 'insecure' };
  }
  if (f.tls_cert === undefined || f.tls_key === undefined) {
    throw new UsageError(
      'the coordinator needs --tls_cert and --tls_key (and a run token) to serve workers; `lora-mpt certs` makes them. --insecure runs without, for tests and demos only',
    );
  }
  const token = readToken('run_token_file', f.run_token_file, RUN_TOKEN_ENV, vars);
  let runToken: string;
  try {
    runToken = checkRunToken(
      token,
      f.run_token_file ? `--run_token_file ${f.run_token_file}` : `$${RUN_TOKEN_ENV}`,
    );
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    kind: 'tls',
    cert: readPem('tls_cert', f.tls_cert),
    key: readPem('tls_key', f.tls_key),
    ...(f.tls_client_ca ? { clientCa: readPem('tls_client_ca', f.tls_client_ca) } : {}),
    runToken,
  };
}

export function clientSecurityOf(
  f: {
    readonly tls_ca?: string | undefined;
    readonly tls_cert?: string | undefined;
    readonly tls_key?: string | undefined;
    readonly token_file?: string | undefined;
    readonly insecure: boolean;
  },
  vars: NodeJS.ProcessEnv,
): ClientSecurity {
  if (f.insecure) {
    conflicts(f, ['tls_ca', 'tls_cert', 'tls_key', 'token_file']);
    return { kind: 'insecure' };
  }
  if (f.tls_ca === undefined) {
    throw new UsageError(
      "the worker needs --tls_ca (the CA of the coordinator's certificate) and a token; --insecure runs without, for tests and demos only",
    );
  }
  if ((f.tls_cert === undefined) !== (f.tls_key === undefined)) {
    throw new UsageError('--tls_cert and --tls_key go together (a client certificate and its key)');
  }
  return {
    kind: 'tls',
    ca: readPem('tls_ca', f.tls_ca),
    ...(f.tls_cert && f.tls_key
      ? { cert: readPem('tls_cert', f.tls_cert), key: readPem('tls_key', f.tls_key) }
      : {}),
    token: readToken('token_file', f.token_file, WORKER_TOKEN_ENV, vars),
  };
}

/** The loud line of an insecure process. */
export function warnIfInsecure(security: { readonly kind: string }, events: Events, role: string): void {
  if (security.kind !== 'insecure') return;
  events.warn(
    'insecure_transport',
    `INSECURE: --insecure: this ${role} speaks plaintext gRPC and NATS with no credentials; anyone who reaches them can join the run, read its data and gradients and steer its training. Use TLS, tokens and NATS users (lora-mpt certs) outside tests and demos`,
    { role },
  );
}

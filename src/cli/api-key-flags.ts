// Who may use `lora-mpt generate`'s server: an API key (a file, or an environment variable) that
// every API request must send as `Authorization: Bearer <key>`, and `--insecure`, the only way to
// listen beyond loopback without one, which the server announces loudly (an `insecure_transport`
// warning event), as the coordinator does.
import { readFileSync } from 'node:fs';
import type { Events } from '../events/events.ts';
import { type FlagSpecs, UsageError } from './flags.ts';

/** Environment variable holding the API key when --api_key_file is not given. */
export const API_KEY_ENV = 'LORA_MPT_API_KEY';

export const apiKeyFlags = {
  api_key_file: {
    kind: 'string',
    help: `File holding the API key (trailing whitespace ignored): the API (/v1/*, /api/generate) then requires "Authorization: Bearer <key>" and the page asks for the key; / and /healthz stay open. Default: $${API_KEY_ENV} (giving both is an error).`,
  },
  insecure: {
    kind: 'bool',
    default: false,
    help: 'Listen on a --server_name beyond loopback with no API key: anyone who reaches the port can use the model. For a trusted network only; said loudly at start.',
  },
} as const satisfies FlagSpecs;

export interface ServerAccess {
  /** The key clients must send; null: none (loopback, or --insecure). */
  readonly apiKey: string | null;
  /** Listening beyond loopback with no key (--insecure). */
  readonly open: boolean;
}

/** A guessable key guards nothing: 32 characters of hex are 128 bits. */
const MIN_KEY_CHARS = 32;

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** The key as read: trailing whitespace trimmed, then non-empty, sendable in an HTTP header, long enough. */
function checkedKey(raw: string, where: string): string {
  const key = raw.trimEnd();
  if (key === '') throw new UsageError(`${where} is empty: put the API key in it`);
  if (!/^[\x21-\x7e]+$/.test(key)) {
    throw new UsageError(
      `${where}: the API key must be printable ASCII with no spaces (it travels in an HTTP header)`,
    );
  }
  if (key.length < MIN_KEY_CHARS) {
    throw new UsageError(
      `${where}: the API key has ${key.length} characters; use at least ${MIN_KEY_CHARS}, random (e.g. \`openssl rand -hex 32 > key.txt\`, then --api_key_file key.txt)`,
    );
  }
  return key;
}

function readKey(path: string | undefined, vars: NodeJS.ProcessEnv): string | null {
  const fromEnv = vars[API_KEY_ENV];
  if (path !== undefined && fromEnv !== undefined) {
    throw new UsageError(
      `--api_key_file ${path} and $${API_KEY_ENV} both give an API key: give one (unset $${API_KEY_ENV} or drop --api_key_file)`,
    );
  }
  if (path !== undefined) {
    let raw: string;
    try {
      raw = readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(`--api_key_file ${path}: ${(err as Error).message}`);
    }
    return checkedKey(raw, `--api_key_file ${path}`);
  }
  return fromEnv === undefined ? null : checkedKey(fromEnv, `$${API_KEY_ENV}`);
}

/** The server's access rule from its flags; a usage error for an exposed server with no key. */
export function serverAccessOf(
  f: { readonly api_key_file?: string | undefined; readonly insecure: boolean; readonly server_name: string },
  vars: NodeJS.ProcessEnv,
): ServerAccess {
  const apiKey = readKey(f.api_key_file, vars);
  if (apiKey !== null && f.insecure) {
    throw new UsageError(
      `--insecure and an API key (${f.api_key_file !== undefined ? '--api_key_file' : `$${API_KEY_ENV}`}) contradict each other: drop --insecure`,
    );
  }
  const loopback = LOOPBACK.has(f.server_name);
  if (apiKey === null && !loopback && !f.insecure) {
    throw new UsageError(
      `--server_name ${f.server_name} is reachable beyond this machine: set an API key with --api_key_file FILE or $${API_KEY_ENV} (or --insecure to serve it to anyone who reaches the port)`,
    );
  }
  return { apiKey, open: apiKey === null && !loopback };
}

/** The loud line of a server that anyone who reaches it may use. */
export function warnIfOpen(access: ServerAccess, host: string, events: Events): void {
  if (!access.open) return;
  events.warn(
    'insecure_transport',
    `INSECURE: --insecure: this generate server listens on ${host} with no API key; anyone who reaches the port can use the model. Set --api_key_file or $${API_KEY_ENV} outside a trusted network`,
    { role: 'generate', host },
  );
}

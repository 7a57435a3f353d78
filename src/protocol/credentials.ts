// Who may open a Session stream, and as whom (docs/security.md). A run has a secret, the run token
// (random, per run). A worker proves membership with one of two bearer tokens in the stream's
// `authorization` metadata, and its identity comes from the credential, never from its Hello:
//   - a worker token `<worker id>.<mac>`, mac = HMAC-SHA256(run token, "lora-mpt worker v1\n" + id)
//     (base64url): bound to one id, minted by `lora-mpt certs`;
//   - the run token itself, accepted only with a client certificate the coordinator verified
//     (mutual TLS): the id is then the certificate's common name.
// Comparisons are constant-time. A token of another run (another run token) fails the MAC.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { peerText } from './peer-text.ts';

/** The metadata key the bearer token travels in (gRPC lower-cases keys). */
export const AUTH_METADATA_KEY = 'authorization';

const MAC_LABEL = 'lora-mpt worker v1\n';
const WORKER_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** A fresh run token: 32 random bytes, base64url (no '.', so it never parses as a worker token). */
export const newRunToken = (): string => randomBytes(32).toString('base64url');

/**
 * A fresh NATS password: "n" + 48 hex digits (192 random bits). It starts with a letter and holds
 * only letters and digits because nats-server reads `password: $NATS_PASSWORD` (the chart's and the
 * manifests' config) by parsing the variable's value as a config value: one that starts with a digit
 * may be taken for a number ("3e7…", "2G…") and the server refuses to start.
 */
export const newNatsPassword = (): string => `n${randomBytes(24).toString('hex')}`;

/** Refuses a run token too short to be a secret (one typed by hand, an empty file). */
export function checkRunToken(token: string, where: string): string {
  const t = token.trim();
  if (t.length < 32 || t.includes('.') || /\s/.test(t)) {
    throw new Error(
      `${where}: a run token is at least 32 characters without "." or spaces (lora-mpt certs makes one)`,
    );
  }
  return t;
}

const mac = (runToken: string, workerId: string) =>
  createHmac('sha256', runToken)
    .update(MAC_LABEL + workerId)
    .digest('base64url');

/** The token that lets `workerId` (and only it) join the run whose secret is `runToken`. */
export function mintWorkerToken(runToken: string, workerId: string): string {
  if (!WORKER_ID.test(workerId)) {
    throw new Error(`worker id "${peerText(workerId)}": use 1-128 letters, digits, ".", "_" or "-"`);
  }
  return `${workerId}.${mac(runToken, workerId)}`;
}

const sameBytes = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export type Verdict =
  | { readonly ok: true; readonly workerId: string; readonly via: 'worker-token' | 'client-certificate' }
  | { readonly ok: false; readonly why: string };

/**
 * Checks a stream's credential: `authorization` is the metadata value (`Bearer <token>`), `certId`
 * the common name of a client certificate the TLS layer verified (undefined without mutual TLS).
 */
export function verifyCredential(
  authorization: string | undefined,
  runToken: string,
  certId: string | undefined,
): Verdict {
  const m = authorization === undefined ? null : /^Bearer ([!-~]{1,512})$/.exec(authorization);
  if (!m) return { ok: false, why: 'no bearer token in the "authorization" metadata' };
  const token = m[1]!;
  const dot = token.lastIndexOf('.');
  if (dot < 0) {
    if (!sameBytes(token, runToken)) return { ok: false, why: 'the token is not this run’s' };
    if (certId === undefined) {
      return {
        ok: false,
        why: 'the run token alone names no worker: present a client certificate (mutual TLS) or a worker token',
      };
    }
    if (!WORKER_ID.test(certId)) {
      return {
        ok: false,
        why: `the client certificate's common name "${peerText(certId)}" is not a worker id`,
      };
    }
    return { ok: true, workerId: certId, via: 'client-certificate' };
  }
  const id = token.slice(0, dot);
  if (!WORKER_ID.test(id) || !sameBytes(token.slice(dot + 1), mac(runToken, id))) {
    return { ok: false, why: 'the worker token is not one of this run’s' };
  }
  if (certId !== undefined && certId !== id) {
    return {
      ok: false,
      why: `the worker token is for "${id}" but the client certificate for "${peerText(certId)}"`,
    };
  }
  return { ok: true, workerId: id, via: 'worker-token' };
}

// Client certificates name their run (docs/security.md): one CA may sign the certificates of many
// runs, and a certificate of another run plus a stolen run token must not make a member (issue #23).
// A worker certificate carries the DNS name `<tag>.run.lora-mpt.invalid` (`.invalid` is reserved,
// RFC 2606: it never resolves), tag = the first 32 hex digits of SHA-256("lora-mpt run v1\n" +
// run token). A DNS name rather than a URI because Helm's genSignedCert writes only DNS names and
// addresses, and its sha256sum computes the same tag; the token cannot be recovered from the tag.
import { createHash } from 'node:crypto';

const LABEL = 'lora-mpt run v1\n';
const SUFFIX = '.run.lora-mpt.invalid';

/** The run's tag, from its run token. */
export const runTag = (runToken: string): string =>
  createHash('sha256')
    .update(LABEL + runToken)
    .digest('hex')
    .slice(0, 32);

/** The DNS subject alternative name that binds a client certificate to the run of `runToken`. */
export const runBindingName = (runToken: string): string => `${runTag(runToken)}${SUFFIX}`;

/**
 * Why a verified client certificate may not act in the run of `runToken` (undefined: it may).
 * `subjectAltName` is Node's `getPeerCertificate().subjectaltname` ("DNS:a, IP Address:b, ...").
 */
export function certificateRunRefusal(
  subjectAltName: string | undefined,
  runToken: string,
): string | undefined {
  const names = (subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:') && s.endsWith(SUFFIX))
    .map((s) => s.slice(4));
  if (names.length === 0) {
    return 'the client certificate names no run: make it with this run’s `lora-mpt certs` (or the chart)';
  }
  const mine = runBindingName(runToken);
  if (names.length === 1 && names[0] === mine) return undefined;
  return 'the client certificate is another run’s (its run name differs from this run’s)';
}

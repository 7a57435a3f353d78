// Text that came from a peer (worker ids, reasons, error strings) before it reaches a log line, an
// event field or a reply: cut to a bound and escaped, so an 8 MB id cannot flood the logs and a
// newline or control character cannot forge a line (docs/security.md).

/** Longest peer text kept, in UTF-16 code units; the rest is replaced by a note of its length. */
export const PEER_TEXT_MAX = 128;

/**
 * `s` with control characters, quotes and backslashes escaped as JSON does (without the outer
 * quotes), cut to `max` characters plus "…(+N chars)". Non-strings become their type name.
 */
export function peerText(s: unknown, max = PEER_TEXT_MAX): string {
  if (typeof s !== 'string') return `<${typeof s}>`;
  const cut = s.length > max ? s.slice(0, max) : s;
  const escaped = JSON.stringify(cut)
    .slice(1, -1)
    .replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return s.length > max ? `${escaped}…(+${s.length - max} chars)` : escaped;
}

// The generate server's API key check: `Authorization: Bearer <key>`, compared in constant time (the
// SHA-256 digests of the sent and the expected key, so lengths never differ), and OpenAI's 401 for a
// missing or wrong key.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './http-io.ts';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export class ApiKey {
  private readonly expected: Buffer;

  constructor(key: string) {
    this.expected = digest(key);
  }

  /** True when the request sends `Authorization: Bearer <the key>` (the scheme in any case). */
  admits(req: IncomingMessage): boolean {
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    // A request with no key is still compared, so a missing and a wrong key take the same time.
    return timingSafeEqual(digest(m?.[1] ?? ''), this.expected) && m !== null;
  }
}

/** OpenAI's answer to a missing or wrong key. */
export function sendUnauthorized(res: ServerResponse): void {
  res.setHeader('www-authenticate', 'Bearer');
  sendJson(res, 401, {
    error: {
      message:
        'a missing or wrong API key: send the key this server was started with as the header "Authorization: Bearer <key>"',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_api_key',
    },
  });
}

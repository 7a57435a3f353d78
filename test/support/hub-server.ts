// A small Hugging Face Hub on loopback for download tests: a real HTTP server answering the Hub's
// revision API (`/api/models/<id>/revision/<rev>?blobs=true`: sha, siblings with size, blobId and
// lfs.sha256) and `/<id>/resolve/<commit>/<file>` with HTTP Range support, as the Hub and its CDN do.
// Tests can make it cut a response short (a dropped connection) or serve altered bytes.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface HubRequest {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

export interface TinyHub {
  readonly endpoint: string;
  readonly commit: string;
  readonly requests: HubRequest[];
  /** The next GET of `file` sends its headers and this many bytes, then drops the connection. */
  cutNext(file: string, bytes: number): void;
  /** Every GET of `file` serves these bytes instead of the real ones (the API still lists the real). */
  corrupt(file: string, bytes: Buffer | null): void;
  close(): Promise<void>;
}

/** The file is an LFS file on the Hub (weights), listed with its sha256; others with the git blob sha1. */
const isLfs = (f: string) => /\.(safetensors|bin)$/.test(f);

export async function startTinyHub(o: {
  readonly repoId: string;
  /** The folder whose files are the repo's (top level only). */
  readonly source: string;
  readonly commit: string;
  /** Extra names listed (and 404 when fetched), e.g. README.md. */
  readonly extra?: readonly string[];
}): Promise<TinyHub> {
  const requests: HubRequest[] = [];
  const cuts = new Map<string, number>();
  const corrupted = new Map<string, Buffer>();
  const files = () => readdirSync(o.source);
  // Hashes once per file version: a benchmark's 256 MiB file is not hashed again on every listing.
  const listed = new Map<string, { readonly key: string; readonly entry: object }>();
  const siblingOf = (rfilename: string) => {
    const st = statSync(join(o.source, rfilename));
    const key = `${st.size}:${st.mtimeMs}`;
    const hit = listed.get(rfilename);
    if (hit?.key === key) return hit.entry;
    const entry = describe(rfilename);
    listed.set(rfilename, { key, entry });
    return entry;
  };
  const describe = (rfilename: string) => {
    const data = readFileSync(join(o.source, rfilename));
    const blobId = createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
    const sha256 = createHash('sha256').update(data).digest('hex');
    return isLfs(rfilename)
      ? { rfilename, size: data.length, blobId, lfs: { sha256, size: data.length, pointerSize: 134 } }
      : { rfilename, size: data.length, blobId };
  };
  const siblings = () =>
    [...files().map(siblingOf)].concat(
      (o.extra ?? []).map((rfilename) => ({ rfilename, size: 10, blobId: '0'.repeat(40) })),
    );
  const server: Server = createServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    const url = new URL(req.url ?? '/', 'http://x');
    if (
      url.pathname === `/api/models/${o.repoId}/revision/main` ||
      url.pathname === `/api/models/${o.repoId}/revision/${o.commit}`
    ) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: o.repoId, sha: o.commit, siblings: siblings() }));
      return;
    }
    const m = /^\/(.+)\/resolve\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    const file = m && m[1] === o.repoId && m[2] === o.commit ? decodeURIComponent(m[3]!) : null;
    if (file === null || !files().includes(file)) {
      res.writeHead(404).end();
      return;
    }
    const whole = corrupted.get(file) ?? readFileSync(join(o.source, file));
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start >= whole.length && range) {
      res.writeHead(416, { 'content-range': `bytes */${whole.length}` }).end();
      return;
    }
    const body = whole.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'content-length': body.length,
      ...(range ? { 'content-range': `bytes ${start}-${whole.length - 1}/${whole.length}` } : {}),
    });
    const cut = cuts.get(file);
    if (cut !== undefined) {
      cuts.delete(file);
      // end(), not destroy(): the bytes written arrive, then the connection closes short of
      // content-length, as when a proxy or the network drops it (a reset could lose bytes in flight).
      res.write(body.subarray(0, cut), () => res.socket?.end());
      return;
    }
    res.end(body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    commit: o.commit,
    requests,
    cutNext: (file, bytes) => cuts.set(file, bytes),
    corrupt: (file, bytes) => (bytes === null ? corrupted.delete(file) : corrupted.set(file, bytes)),
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

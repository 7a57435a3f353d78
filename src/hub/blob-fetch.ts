// One file of a snapshot downloaded into the cache's blobs/ folder as huggingface_hub keeps it:
// bytes go to blobs/<etag>.incomplete, a later run resumes that file with an HTTP Range request,
// and only content whose size and checksum match is renamed to blobs/<etag>. A final path never
// holds a partial or unverified file; a corrupted download is deleted, named, and refused.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FetchItem } from './fetch-plan.ts';

/** No bytes for this long fails the download (it resumes on the next run). */
const IDLE_TIMEOUT_MS = 60_000;
const WRITE_BATCH = 4 * 2 ** 20;

export interface BlobProgress {
  readonly path: string;
  /** Bytes on disk so far, including those of an earlier, interrupted run. */
  readonly done: number;
  readonly total: number | null;
}

export interface FetchedBlob {
  /** The blob's file name under blobs/ (its sha256, or the git blob sha1 for small files). */
  readonly etag: string;
  readonly size: number;
  /** Bytes this run downloaded (0 when the blob was already there). */
  readonly downloaded: number;
  /** Bytes an earlier run had left in blobs/<etag>.incomplete and this one kept. */
  readonly resumedFrom: number;
}

const sizeOf = (p: string) =>
  stat(p).then(
    (s) => (s.isFile() ? s.size : null),
    () => null,
  );

async function hashFile(path: string, h: Hash): Promise<Hash> {
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h;
}

/** The git blob id of a file: sha1 over "blob <size>\0" and the content, as `git hash-object`. */
async function gitBlobSha1(path: string, size: number): Promise<string> {
  return (await hashFile(path, createHash('sha1').update(`blob ${size}\0`))).digest('hex');
}

/** Downloads `item` into `blobs` (resuming a partial file), checks it, and returns its blob. */
export async function fetchBlob(
  item: FetchItem,
  blobs: string,
  o: { readonly token?: string; readonly onProgress?: (p: BlobProgress) => void },
): Promise<FetchedBlob> {
  const known = item.sha256 ?? item.gitSha1;
  if (known !== undefined) {
    const have = await sizeOf(join(blobs, known));
    if (have !== null && (item.size === undefined || have === item.size)) {
      return { etag: known, size: have, downloaded: 0, resumedFrom: 0 };
    }
  }
  const partName = known ?? `url-${createHash('sha1').update(item.url).digest('hex')}`;
  const part = join(blobs, `${partName}.incomplete`);
  let offset = (await sizeOf(part)) ?? 0;
  const sha256 = createHash('sha256');
  if (offset > 0) await hashFile(part, sha256);

  const idle = new AbortController();
  let timer = setTimeout(() => idle.abort(), IDLE_TIMEOUT_MS);
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (offset > 0) headers.range = `bytes=${offset}-`;
  let downloaded = 0;
  const resumedFrom = offset;
  let hash = sha256;
  let resumed = false;
  try {
    const res = await fetch(item.url, { headers, signal: idle.signal });
    const complete = res.status === 416 && offset > 0 && offset === item.size;
    if (!res.ok && !complete) throw new Error(`HTTP ${res.status}`);
    resumed = res.status === 206 || complete;
    if (offset > 0 && !resumed) {
      // The server ignored the Range: start over rather than append the whole file again.
      offset = 0;
      hash = createHash('sha256');
    }
    const length = Number(res.headers.get('content-length') ?? Number.NaN);
    const total = item.size ?? (Number.isFinite(length) && !complete ? offset + length : null);
    if (!complete) {
      if (!res.body) throw new Error('the answer has no body');
      const fh = await open(part, offset === 0 ? 'w' : 'a');
      // Chunks are written in batches of WRITE_BATCH bytes (a write per 16-64 KiB chunk costs more
      // than the download); whatever arrived is written before the file closes, even on an error.
      let pending: Uint8Array[] = [];
      let pendingBytes = 0;
      const flush = async () => {
        if (pendingBytes === 0) return;
        const batch = pending;
        pending = [];
        pendingBytes = 0;
        await fh.writev(batch);
      };
      try {
        for await (const chunk of res.body) {
          clearTimeout(timer);
          timer = setTimeout(() => idle.abort(), IDLE_TIMEOUT_MS);
          hash.update(chunk);
          pending.push(chunk);
          pendingBytes += chunk.byteLength;
          downloaded += chunk.byteLength;
          if (pendingBytes >= WRITE_BATCH) await flush();
          o.onProgress?.({ path: item.path, done: offset + downloaded, total });
        }
      } finally {
        await flush();
        await fh.close();
      }
    }
  } catch (err) {
    const why = idle.signal.aborted ? `no data for ${IDLE_TIMEOUT_MS / 1000} s` : (err as Error).message;
    throw new Error(
      `${item.path}: GET ${item.url} failed (${why}); ${offset + downloaded} bytes are kept in ${part} and the next run resumes from there`,
    );
  } finally {
    clearTimeout(timer);
  }
  return settle(item, blobs, part, hash.digest('hex'), {
    downloaded,
    resumedFrom: resumed ? resumedFrom : 0,
  });
}

/** Checks the finished `part` against the item's size and checksum and renames it to its blob. */
async function settle(
  item: FetchItem,
  blobs: string,
  part: string,
  sha256: string,
  counts: { readonly downloaded: number; readonly resumedFrom: number },
): Promise<FetchedBlob> {
  const size = (await sizeOf(part)) ?? 0;
  const refuse = async (what: string) => {
    await rm(part, { force: true });
    throw new Error(
      `${item.path}: refused the download from ${item.url}: ${what}; the partial file was deleted`,
    );
  };
  if (item.size !== undefined && size !== item.size) {
    await refuse(`${size} bytes where the Hub lists ${item.size}`);
  }
  if (item.sha256 !== undefined && sha256 !== item.sha256) {
    await refuse(`sha256 ${sha256}, expected ${item.sha256}`);
  }
  if (item.gitSha1 !== undefined) {
    const got = await gitBlobSha1(part, size);
    if (got !== item.gitSha1) await refuse(`git blob sha1 ${got}, expected ${item.gitSha1}`);
  }
  const etag = item.sha256 ?? item.gitSha1 ?? sha256;
  await rename(part, join(blobs, etag));
  return { etag, size, ...counts };
}

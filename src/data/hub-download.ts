// Downloads a Hugging Face dataset's data files into the hub cache, so the next run (and Python
// tools) find it there: asks the hub API for the main commit and file list, fetches each .json,
// .jsonl or .parquet file to snapshots/<commit>/<path> (filled in a temporary folder, then renamed).
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { HubOptions } from './hf-cache.ts';

const TIMEOUT_MS = 30_000;
const DATA_FILE = /\.(json|jsonl|parquet)$/i;

interface RevisionInfo {
  readonly sha?: unknown;
  readonly siblings?: readonly { readonly rfilename?: unknown }[];
}

async function get(url: string, o: HubOptions): Promise<Response> {
  const res = await fetch(url, {
    headers: o.token ? { authorization: `Bearer ${o.token}` } : {},
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res;
}

/** Fetches the data files of `id` at its main commit into `repo` (the cache folder); returns the snapshot. */
export async function downloadHubDataset(id: string, o: HubOptions, repo: string): Promise<string> {
  const info = (await (
    await get(`${o.endpoint}/api/datasets/${id}/revision/main`, o)
  ).json()) as RevisionInfo;
  if (typeof info.sha !== 'string' || !/^[0-9a-f]{40}$/.test(info.sha))
    throw new Error(`the hub API gave no commit for ${id}`);
  const files = (info.siblings ?? [])
    .map((s) => s.rfilename)
    .filter(
      (f): f is string =>
        typeof f === 'string' &&
        DATA_FILE.test(f) &&
        !f.split('/').some((p) => p.startsWith('.') || p === '..'),
    );
  if (files.length === 0) throw new Error(`${id} has no .json, .jsonl or .parquet file at ${info.sha}`);
  // Fill a temporary folder and rename it into snapshots/ at the end, so an interrupted download
  // never looks like a cached snapshot.
  const snapshot = join(repo, 'snapshots', info.sha);
  const partial = join(repo, `download-${info.sha}.incomplete`);
  rmSync(partial, { recursive: true, force: true });
  for (const f of files) {
    const body = new Uint8Array(
      await (await get(`${o.endpoint}/datasets/${id}/resolve/${info.sha}/${f}`, o)).arrayBuffer(),
    );
    const dest = join(partial, f);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, body);
  }
  mkdirSync(join(repo, 'snapshots'), { recursive: true });
  rmSync(snapshot, { recursive: true, force: true });
  renameSync(partial, snapshot);
  mkdirSync(join(repo, 'refs'), { recursive: true });
  writeFileSync(join(repo, 'refs', 'main'), info.sha);
  return snapshot;
}

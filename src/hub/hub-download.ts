// Downloads a Hugging Face Hub repository snapshot into the local hub cache, laid out as
// huggingface_hub does it (snapshots/<commit>/..., refs/main), for datasets and models alike.
// Files stream to disk (model shards are ~10 GB) into a temporary folder renamed into place only
// when complete, so an interrupted download never looks like a cached snapshot.
import { createWriteStream, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { HubOptions, RepoKind } from './hf-cache.ts';

/** No answer at all for this long fails the request (a large body may take longer, that is fine). */
const CONNECT_TIMEOUT_MS = 30_000;
const DATA_FILE = /\.(json|jsonl|parquet)$/i;

interface RevisionInfo {
  readonly sha?: unknown;
  readonly siblings?: readonly { readonly rfilename?: unknown }[];
}

async function get(url: string, o: HubOptions): Promise<Response> {
  const res = await fetch(url, {
    headers: o.token ? { authorization: `Bearer ${o.token}` } : {},
    signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
  });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res;
}

const safePath = (f: string) => !f.split('/').some((p) => p === '' || p.startsWith('.') || p === '..');

/**
 * Fetches the files `pick` chooses from the list of `id`'s files at its main commit into `repo`
 * (the repo's cache folder). Returns the snapshot folder.
 */
export async function downloadHubSnapshot(
  kind: RepoKind,
  id: string,
  o: HubOptions,
  repo: string,
  pick: (files: readonly string[]) => readonly string[],
): Promise<string> {
  const info = (await (await get(`${o.endpoint}/api/${kind}/${id}/revision/main`, o)).json()) as RevisionInfo;
  if (typeof info.sha !== 'string' || !/^[0-9a-f]{40}$/.test(info.sha)) {
    throw new Error(`the hub API gave no commit for ${id}`);
  }
  const listed = (info.siblings ?? [])
    .map((s) => s.rfilename)
    .filter((f): f is string => typeof f === 'string');
  const files = pick(listed.filter(safePath));
  if (files.length === 0) throw new Error(`${id} at ${info.sha} has none of the files lora-mpt reads`);
  const snapshot = join(repo, 'snapshots', info.sha);
  const partial = join(repo, `download-${info.sha}.incomplete`);
  rmSync(partial, { recursive: true, force: true });
  const prefix = kind === 'datasets' ? `${o.endpoint}/datasets/${id}` : `${o.endpoint}/${id}`;
  for (const f of files) {
    const res = await get(`${prefix}/resolve/${info.sha}/${f}`, o);
    const dest = join(partial, f);
    mkdirSync(dirname(dest), { recursive: true });
    if (!res.body) throw new Error(`GET ${f}: empty body`);
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), createWriteStream(dest));
  }
  mkdirSync(join(repo, 'snapshots'), { recursive: true });
  rmSync(snapshot, { recursive: true, force: true });
  renameSync(partial, snapshot);
  mkdirSync(join(repo, 'refs'), { recursive: true });
  writeFileSync(join(repo, 'refs', 'main'), info.sha);
  return snapshot;
}

/** Fetches the data files (.json, .jsonl, .parquet) of dataset `id`. */
export function downloadHubDataset(id: string, o: HubOptions, repo: string): Promise<string> {
  return downloadHubSnapshot('datasets', id, o, repo, (files) => files.filter((f) => DATA_FILE.test(f)));
}

const MODEL_METADATA = new Set([
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
]);

/**
 * The files of a model repo an MPT checkpoint needs: config and tokenizer files, and the weights —
 * safetensors when the repo has them, else the PyTorch .bin shards (mosaicml/mpt-7b ships only
 * those) — with their index. Remote-code .py files, READMEs and other formats are skipped.
 */
export function modelFiles(files: readonly string[]): string[] {
  const top = files.filter((f) => !f.includes('/'));
  const hasSafetensors = top.some((f) => f.endsWith('.safetensors'));
  const weights = hasSafetensors
    ? top.filter((f) => f.endsWith('.safetensors') || f === 'model.safetensors.index.json')
    : top.filter((f) => /^pytorch_model.*\.bin$/.test(f) || f === 'pytorch_model.bin.index.json');
  return [...top.filter((f) => MODEL_METADATA.has(f)), ...weights];
}

export function downloadHubModel(id: string, o: HubOptions, repo: string): Promise<string> {
  return downloadHubSnapshot('models', id, o, repo, modelFiles);
}

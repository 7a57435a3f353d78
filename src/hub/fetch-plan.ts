// What `lora-mpt fetch` downloads: the files of a Hub repo at a revision, with the checksums the Hub
// publishes for them (sha256 for LFS files, the git blob sha1 otherwise, and sizes), or the lines of
// a URL list file. Either way one plan: the snapshot's name (a commit) and one item per file.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** One file of the snapshot: where it comes from and what it must hash to. */
export interface FetchItem {
  /** Path inside the snapshot, e.g. `model-00001-of-00002.safetensors`. */
  readonly path: string;
  readonly url: string;
  /** Hex sha256 of the content (LFS files on the Hub; optional in a URL list). */
  readonly sha256?: string;
  /** Hex git blob sha1 (non-LFS files on the Hub). */
  readonly gitSha1?: string;
  readonly size?: number;
}

export interface FetchPlan {
  /** The 40-hex commit naming snapshots/<commit>/. */
  readonly commit: string;
  readonly items: readonly FetchItem[];
}

interface Sibling {
  readonly rfilename?: unknown;
  readonly size?: unknown;
  readonly blobId?: unknown;
  readonly lfs?: { readonly sha256?: unknown; readonly size?: unknown } | null;
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

const HEX40 = /^[0-9a-f]{40}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const DATA_FILE = /\.(json|jsonl|parquet)$/i;
/** Relative, no hidden parts, no `..`: a repo file name that stays inside the snapshot. */
export const safeRepoPath = (f: string) =>
  f.length > 0 && !f.split('/').some((p) => p === '' || p.startsWith('.') || p === '..');

export type RepoType = 'model' | 'dataset';

/** The repo's files at `revision` as the Hub API lists them (?blobs=true adds sizes and hashes). */
export async function hubPlan(o: {
  readonly endpoint: string;
  readonly repoId: string;
  readonly repoType: RepoType;
  readonly revision: string;
  readonly token?: string;
  /** Every file in the repo, not only those lora-mpt reads. */
  readonly allFiles: boolean;
}): Promise<FetchPlan> {
  const kind = o.repoType === 'dataset' ? 'datasets' : 'models';
  const rev = encodeURIComponent(o.revision);
  const api = `${o.endpoint}/api/${kind}/${o.repoId}/revision/${rev}?blobs=true`;
  const res = await fetch(api, {
    headers: o.token ? { authorization: `Bearer ${o.token}` } : {},
    signal: AbortSignal.timeout(60_000),
  });
  if (!res.ok) {
    const hint = res.status === 401 || res.status === 403 ? ' (a gated or private repo: set HF_TOKEN)' : '';
    throw new Error(`GET ${api}: HTTP ${res.status}${hint}`);
  }
  const info = (await res.json()) as { sha?: unknown; siblings?: readonly Sibling[] };
  if (typeof info.sha !== 'string' || !HEX40.test(info.sha)) {
    throw new Error(`GET ${api}: the answer names no commit (field "sha")`);
  }
  const commit = info.sha;
  const byName = new Map<string, Sibling>();
  for (const s of info.siblings ?? []) {
    if (typeof s.rfilename === 'string' && safeRepoPath(s.rfilename)) byName.set(s.rfilename, s);
  }
  const names = [...byName.keys()];
  const picked = o.allFiles
    ? names
    : o.repoType === 'dataset'
      ? names.filter((f) => DATA_FILE.test(f))
      : modelFiles(names);
  if (picked.length === 0) throw new Error(`${o.repoId} at ${commit} has none of the files lora-mpt reads`);
  const prefix =
    o.repoType === 'dataset' ? `${o.endpoint}/datasets/${o.repoId}` : `${o.endpoint}/${o.repoId}`;
  const items = picked.map((path): FetchItem => {
    const s = byName.get(path) as Sibling;
    const url = `${prefix}/resolve/${commit}/${path.split('/').map(encodeURIComponent).join('/')}`;
    const lfsSha = typeof s.lfs?.sha256 === 'string' ? s.lfs.sha256 : undefined;
    const size =
      typeof s.lfs?.size === 'number' ? s.lfs.size : typeof s.size === 'number' ? s.size : undefined;
    return {
      path,
      url,
      ...(lfsSha !== undefined && HEX64.test(lfsSha) ? { sha256: lfsSha } : {}),
      ...(lfsSha === undefined && typeof s.blobId === 'string' && HEX40.test(s.blobId)
        ? { gitSha1: s.blobId }
        : {}),
      ...(size !== undefined ? { size } : {}),
    };
  });
  return { commit, items };
}

/**
 * A URL list file: one file per line, `URL [sha256] [name]` (blank lines and # comments skipped);
 * the name defaults to the URL's last path segment. The snapshot is named by the sha1 of the list,
 * so the same list always lands in the same snapshot folder.
 */
export async function urlListPlan(file: string): Promise<FetchPlan> {
  const text = await readFile(file, 'utf8');
  const items: FetchItem[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${file} line ${i + 1}`;
    const [url, ...rest] = line.split(/\s+/) as [string, ...string[]];
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`${where}: "${url}" is not a URL`);
    }
    if (!['http:', 'https:'].includes(parsed.protocol)) throw new Error(`${where}: ${url} is not http(s)`);
    const sha256 =
      rest[0] !== undefined && HEX64.test(rest[0].toLowerCase()) ? rest.shift()?.toLowerCase() : undefined;
    const path = rest.shift() ?? decodeURIComponent(parsed.pathname.split('/').pop() ?? '');
    if (rest.length > 0)
      throw new Error(`${where}: expected "URL [sha256] [name]", found ${rest.length} more field(s)`);
    if (!safeRepoPath(path)) throw new Error(`${where}: "${path}" is not a file name inside the snapshot`);
    if (seen.has(path)) throw new Error(`${where}: ${path} is listed twice`);
    seen.add(path);
    items.push({ path, url, ...(sha256 !== undefined ? { sha256 } : {}) });
  });
  if (items.length === 0) throw new Error(`${file}: lists no URLs`);
  return { commit: createHash('sha1').update(text).digest('hex'), items };
}

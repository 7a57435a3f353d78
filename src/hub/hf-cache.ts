// The local Hugging Face hub cache, laid out as huggingface_hub does it:
// <hub>/<datasets|models>--<org>--<name>/{refs/main, snapshots/<commit>/...}. Resolves dataset and
// model ids to snapshot folders. Reads only: downloads are stage-snapshot.ts (via hub-download.ts and `lora-mpt fetch`), the choice is datasets.ts/models.ts.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface HubOptions {
  /** The hub cache folder (HF_HUB_CACHE, or HF_HOME/hub, or ~/.cache/huggingface/hub). */
  readonly hubCache: string;
  /** https://huggingface.co unless HF_ENDPOINT says otherwise. */
  readonly endpoint: string;
  /** HF_HUB_OFFLINE=1: never touch the network. */
  readonly offline: boolean;
  /** HF_TOKEN, sent as a bearer token when downloading. */
  readonly token?: string;
}

/** The hub cache folder huggingface_hub uses: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: Readonly<Record<string, string | undefined>>, home: string): string {
  const hfHome = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(home, '.cache'), 'huggingface');
  return env.HF_HUB_CACHE ?? join(hfHome, 'hub');
}

/** The hub settings from environment variables, named as huggingface_hub names them. */
export function hubOptionsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  home: string,
): HubOptions {
  const offline = ['1', 'ON', 'YES', 'TRUE'].includes((env.HF_HUB_OFFLINE ?? '').toUpperCase());
  return {
    hubCache: hubCacheDir(env, home),
    endpoint: (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, ''),
    offline,
    ...(env.HF_TOKEN ? { token: env.HF_TOKEN } : {}),
  };
}

/** "org/name" with hub-legal characters, and no path-like parts. */
export function isHubId(s: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(s) && !s.includes('..');
}

export type RepoKind = 'datasets' | 'models';

/** <hub>/datasets--org--name (or models--org--name). */
export function repoFolder(hubCache: string, kind: RepoKind, id: string): string {
  return join(hubCache, `${kind}--${id.replaceAll('/', '--')}`);
}

/**
 * The snapshot folder of a cached repo: the commit refs/main names if it is there, else the most
 * recently written snapshot; undefined when nothing is cached.
 */
export function cachedSnapshot(hubCache: string, kind: RepoKind, id: string): string | undefined {
  const repo = repoFolder(hubCache, kind, id);
  const snapshots = join(repo, 'snapshots');
  if (!existsSync(snapshots)) return undefined;
  const ref = join(repo, 'refs', 'main');
  if (existsSync(ref)) {
    const commit = readFileSync(ref, 'utf8').trim();
    if (existsSync(join(snapshots, commit))) return join(snapshots, commit);
  }
  const all = readdirSync(snapshots)
    .map((name) => join(snapshots, name))
    .filter((p) => statSync(p).isDirectory())
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return all[0];
}

/**
 * The tokenizer.json of --base_model: <dir>/tokenizer.json for a directory, else the cached
 * snapshot of a model id. The error says where it looked.
 */
export function resolveTokenizerJson(baseModel: string, hubCache: string): string {
  if (existsSync(baseModel) && statSync(baseModel).isDirectory()) {
    const file = join(baseModel, 'tokenizer.json');
    if (existsSync(file)) return file;
    throw new Error(`--base_model ${baseModel}: the directory has no tokenizer.json; pass --tokenizer PATH`);
  }
  if (isHubId(baseModel)) {
    const snap = cachedSnapshot(hubCache, 'models', baseModel);
    const file = snap === undefined ? undefined : join(snap, 'tokenizer.json');
    if (file !== undefined && existsSync(file)) return file;
    throw new Error(
      `--base_model ${baseModel}: no tokenizer.json in the Hugging Face cache ` +
        `(${repoFolder(hubCache, 'models', baseModel)}/snapshots/*/); download the model there, ` +
        'pass a local model directory, or pass --tokenizer PATH',
    );
  }
  throw new Error(`--base_model ${baseModel}: no such directory, and not a Hugging Face model id (org/name)`);
}

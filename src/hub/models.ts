// Resolves a base model given as a local directory or a Hugging Face Hub id (`mosaicml/mpt-7b-instruct`)
// through the local HF cache layout (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub):
// models--org--name/refs/<revision> → snapshots/<commit>/. Nothing is downloaded (see docs/model-loading.md).
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readIndex } from '../formats/weight-index.ts';
import { type HubOptions, hubCacheDir as hubCacheDirOf, repoFolder } from './hf-cache.ts';
import { downloadHubModel } from './hub-download.ts';

/** The environment variables huggingface_hub honours for its cache, passed in (modules do not read env). */
export interface HubEnv {
  readonly HF_HUB_CACHE?: string | undefined;
  readonly HF_HOME?: string | undefined;
  readonly HOME?: string | undefined;
}

export interface ResolvedModel {
  /** Directory holding config.json and the weights. */
  readonly dir: string;
  readonly source: 'directory' | 'hf-cache';
  readonly repoId: string | null;
  /** The snapshot's commit when resolved from the cache. */
  readonly commit: string | null;
  /** tokenizer.json beside the weights, when present. */
  readonly tokenizerJson: string | null;
}

export class ModelNotFoundError extends Error {
  override readonly name = 'ModelNotFoundError';
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const COMMIT = /^[0-9a-f]{40}$/;

const isDir = (p: string) =>
  stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
const isFile = (p: string) =>
  stat(p).then(
    (s) => s.isFile(),
    () => false,
  );

/** The hub cache directory huggingface_hub would use with this environment (src/data/hf-cache.ts). */
export function hubCacheDir(env: HubEnv): string {
  if (!env.HF_HUB_CACHE && !env.HF_HOME && !env.HOME) {
    throw new ModelNotFoundError('cannot locate the Hugging Face cache: set HF_HUB_CACHE, HF_HOME or HOME');
  }
  return hubCacheDirOf({ HF_HUB_CACHE: env.HF_HUB_CACHE, HF_HOME: env.HF_HOME }, env.HOME ?? '');
}

/** Weight files a checkpoint directory lacks: [] when complete. Lists shard names when an index is present. */
export async function missingWeightFiles(dir: string): Promise<string[]> {
  for (const [index, single] of [
    ['model.safetensors.index.json', 'model.safetensors'],
    ['pytorch_model.bin.index.json', 'pytorch_model.bin'],
  ] as const) {
    if (await isFile(join(dir, index))) {
      const files = (await readIndex(join(dir, index))).files;
      const missing: string[] = [];
      for (const f of files) if (!(await isFile(join(dir, f)))) missing.push(f);
      return missing;
    }
    if (await isFile(join(dir, single))) return [];
  }
  return ['model.safetensors or pytorch_model.bin (or an index file *.index.json with its shards)'];
}

/** What a checkpoint directory lacks: config.json, and the weights (every shard its index lists). */
async function missingCheckpointFiles(dir: string): Promise<string[]> {
  const missing = (await isFile(join(dir, 'config.json'))) ? [] : ['config.json'];
  missing.push(...(await missingWeightFiles(dir)));
  return missing;
}

function downloadHelp(repoId: string, revision: string, cache: string, missing: readonly string[]): string {
  const repo = repoFolder(cache, 'models', repoId);
  const shardedBin =
    'pytorch_model.bin.index.json, pytorch_model-00001-of-00002.bin, pytorch_model-00002-of-00002.bin';
  return [
    `Download from https://huggingface.co/${repoId}/tree/${revision}: ${missing.join(', ')}`,
    `  (an MPT checkpoint needs config.json, tokenizer.json and the weight files; mosaicml/mpt-7b ships ${shardedBin}).`,
    `Then either pass the directory holding them as the model (e.g. --base_model ./mpt-7b), or put them in`,
    `  ${join(repo, 'snapshots', '<commit>')}/ and write <commit> into ${join(repo, 'refs', revision)}`,
    `  (what \`huggingface-cli download ${repoId}\` does on a machine with network access; copy that cache here).`,
  ].join('\n');
}

/**
 * Finds a model: an existing directory is used as is; otherwise `org/name` is looked up in the HF cache.
 * Throws ModelNotFoundError saying which files to download and where to put them.
 */
export async function resolveModel(
  model: string,
  env: HubEnv,
  revision = 'main',
  /** Where the network allows (not HF_HUB_OFFLINE), a model missing from the cache is downloaded into it. */
  download?: HubOptions,
): Promise<ResolvedModel> {
  const asDir = async (
    dir: string,
    source: ResolvedModel['source'],
    repoId: string | null,
    commit: string | null,
  ) => {
    const tok = join(dir, 'tokenizer.json');
    return { dir, source, repoId, commit, tokenizerJson: (await isFile(tok)) ? tok : null };
  };
  if (await isDir(model)) {
    const missing = await missingCheckpointFiles(model);
    if (missing.length > 0) {
      throw new ModelNotFoundError(
        `${model}: the model directory is incomplete, missing: ${missing.join('; ')} (an MPT checkpoint needs config.json, the weight files and tokenizer.json; \`lora-mpt fetch\` stages one)`,
      );
    }
    return asDir(model, 'directory', null, null);
  }
  if (!REPO_ID.test(model)) {
    throw new ModelNotFoundError(
      `${model}: not a directory, and not a Hugging Face Hub id of the form org/name`,
    );
  }
  const cache = download?.hubCache ?? hubCacheDir(env);
  const repo = repoFolder(cache, 'models', model);
  let commit: string | null = COMMIT.test(revision) ? revision : null;
  if (!commit) {
    const ref = join(repo, 'refs', revision);
    try {
      commit = (await readFile(ref, 'utf8')).trim();
    } catch {
      const all = ['config.json', 'tokenizer.json', 'the weight files'];
      const help = downloadHelp(model, revision, cache, all);
      if (!download || download.offline || revision !== 'main') {
        const why = download?.offline ? 'HF_HUB_OFFLINE is set' : 'downloading was not asked for';
        throw new ModelNotFoundError(
          `${model} is not a local directory and is not in the Hugging Face cache (no ${ref}; ${why}).\n${help}`,
        );
      }
      try {
        await downloadHubModel(model, { ...download, hubCache: cache });
        commit = (await readFile(ref, 'utf8')).trim();
      } catch (err) {
        throw new ModelNotFoundError(
          `${model} is not in the Hugging Face cache (no ${ref}) and could not be downloaded (${(err as Error).message}).\n${help}`,
        );
      }
    }
  }
  const dir = join(repo, 'snapshots', commit);
  const missing = (await isDir(dir))
    ? await missingCheckpointFiles(dir)
    : ['config.json', 'the weight files'];
  if (missing.length > 0) {
    throw new ModelNotFoundError(
      `${model}@${revision}: the cached snapshot ${dir} is incomplete.\n${downloadHelp(model, revision, cache, missing)}`,
    );
  }
  return asDir(dir, 'hf-cache', model, commit);
}

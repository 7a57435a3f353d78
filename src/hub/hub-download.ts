// Downloads a Hugging Face Hub repository's main snapshot into the local hub cache when a model or
// dataset id is not there yet (resolveModel, resolveHubDataset): the files lora-mpt reads, staged
// exactly as `lora-mpt fetch` stages them (fetch-plan.ts, stage-snapshot.ts: blobs, snapshot links,
// refs/main last; resumable, checksums checked), so there is one way a download lands in the cache.
import { hubPlan, type RepoType } from './fetch-plan.ts';
import type { HubOptions, RepoKind } from './hf-cache.ts';
import { stageSnapshot } from './stage-snapshot.ts';

export { modelFiles } from './fetch-plan.ts';

/** Stages `id`'s main snapshot into `o.hubCache`; returns the snapshot folder. */
export async function downloadHubSnapshot(kind: RepoKind, id: string, o: HubOptions): Promise<string> {
  const repoType: RepoType = kind === 'datasets' ? 'dataset' : 'model';
  const token = o.token ? { token: o.token } : {};
  const plan = await hubPlan({
    endpoint: o.endpoint,
    repoId: id,
    repoType,
    revision: 'main',
    allFiles: false,
    ...token,
  });
  const staged = await stageSnapshot(plan, {
    hubCache: o.hubCache,
    kind,
    repoId: id,
    revision: 'main',
    ...token,
  });
  return staged.snapshot;
}

/** Fetches the data files (.json, .jsonl, .parquet) of dataset `id`. */
export function downloadHubDataset(id: string, o: HubOptions): Promise<string> {
  return downloadHubSnapshot('datasets', id, o);
}

/** Fetches config, tokenizer files and one weight format of model `id`. */
export function downloadHubModel(id: string, o: HubOptions): Promise<string> {
  return downloadHubSnapshot('models', id, o);
}

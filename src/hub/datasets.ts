// A Hugging Face dataset id as a local folder: the cached snapshot, else a download into the cache
// (unless HF_HUB_OFFLINE); the error says where to put it when neither works.

import { cachedSnapshot, type HubOptions, repoFolder } from './hf-cache.ts';
import { downloadHubDataset } from './hub-download.ts';

/** A dataset id's snapshot folder: from the cache, else downloaded into it (unless offline). */
export async function resolveHubDataset(id: string, o: HubOptions): Promise<string> {
  const cached = cachedSnapshot(o.hubCache, 'datasets', id);
  if (cached !== undefined) return cached;
  const where = repoFolder(o.hubCache, 'datasets', id);
  const todo =
    `download it where the network allows (huggingface-cli download --repo-type dataset ${id}) and copy ` +
    `its cache folder to ${where}, or set HF_HUB_CACHE to the cache that has it, or pass --data_path a ` +
    'local .json/.jsonl/.parquet file';
  if (o.offline)
    throw new Error(
      `dataset ${id} is not in the Hugging Face cache (${where}) and HF_HUB_OFFLINE is set: ${todo}`,
    );
  try {
    return await downloadHubDataset(id, o);
  } catch (err) {
    throw new Error(
      `dataset ${id} is not in the Hugging Face cache (${where}) and could not be downloaded ` +
        `(${(err as Error).message}): ${todo}`,
    );
  }
}

// The index of a sharded checkpoint (`model.safetensors.index.json`, `pytorch_model.bin.index.json`):
// {"metadata": {"total_size": bytes}, "weight_map": {tensor name: shard file}}. Validated so a bad
// index cannot point outside its directory or disagree with the shards it names.
import { readFile } from 'node:fs/promises';

export interface WeightIndex {
  readonly path: string;
  readonly weightMap: ReadonlyMap<string, string>;
  /** Shard files in the order they first appear (HF writes them in shard-number order). */
  readonly files: string[];
  /** Throws unless the shards hold exactly the tensors the index lists, each in its listed file. */
  check(found: ReadonlyMap<string, string>): void;
}

export async function readIndex(path: string): Promise<WeightIndex> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read the weight index (${(e as Error).message})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new Error(`${path}: "weight_map" must be an object of tensor name → shard file`);
  }
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(map)) {
    // A plain file name only: an index must not make the loader open files elsewhere.
    if (typeof file !== 'string' || file === '' || /[/\\]/.test(file) || file === '.' || file === '..') {
      throw new Error(`${path}: "weight_map"."${name}" must be a shard file name in the same directory`);
    }
    weightMap.set(name, file);
  }
  const files = [...new Set(weightMap.values())].sort();
  return {
    path,
    weightMap,
    files,
    check(found) {
      for (const [name, file] of weightMap) {
        const at = found.get(name);
        if (at === undefined) throw new Error(`${path}: lists "${name}" in ${file}, but no shard holds it`);
        if (at !== file) throw new Error(`${path}: lists "${name}" in ${file}, but it is in ${at}`);
      }
      for (const [name, file] of found) {
        if (!weightMap.has(name))
          throw new Error(`${path}: ${file} holds "${name}", which the index does not list`);
      }
    },
  };
}

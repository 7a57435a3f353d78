// How a checkpoint is cut into weight files the way transformers' `save_pretrained` cuts it
// (huggingface_hub's split_state_dict_into_shards): tensors in order fill a shard until the next
// would pass max_shard_size; a tensor bigger than the limit gets a shard of its own. One shard is
// `model.safetensors`; several are `model-0000i-of-0000n.safetensors` with
// `model.safetensors.index.json` ({"metadata": {"total_size"}, "weight_map"}).
import type { FloatDtype } from '../formats/dtypes.ts';
import { type PlannedTensor, tensorBytes } from '../formats/safetensors-file-writer.ts';

export interface ShardPlan {
  readonly files: readonly { readonly file: string; readonly tensors: readonly PlannedTensor[] }[];
  /** Sum of the tensors' bytes (the index's metadata.total_size). */
  readonly totalSize: number;
}

export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

/** "5GB" (10^9), "500MB", "100KB", "2GiB" (2^30), "64MiB", "1KiB", or a byte count, as transformers reads them. */
export function parseShardSize(text: string): number {
  const m = /^(\d+)\s*(GIB|MIB|KIB|GB|MB|KB|B)?$/i.exec(text.trim());
  if (m === null)
    throw new Error(`max_shard_size "${text}": expected a whole number with a unit, e.g. 5GB, 500MB, 2GiB`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const scale: Record<string, number> = {
    B: 1,
    KB: 1e3,
    MB: 1e6,
    GB: 1e9,
    KIB: 2 ** 10,
    MIB: 2 ** 20,
    GIB: 2 ** 30,
  };
  const bytes = Number(m[1]) * (scale[unit] as number);
  if (bytes < 1) throw new Error(`max_shard_size "${text}": must be at least one byte`);
  return bytes;
}

/** Shards for `tensors` stored as `dtype` (its real byte sizes, as save_pretrained counts them). */
export function planShards(
  tensors: readonly PlannedTensor[],
  maxShardSize: number,
  dtype: FloatDtype,
): ShardPlan {
  const shards: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let currentSize = 0;
  let totalSize = 0;
  for (const t of tensors) {
    const size = tensorBytes(t.shape, dtype);
    totalSize += size;
    if (size > maxShardSize) {
      shards.push([t]);
      continue;
    }
    if (currentSize + size > maxShardSize && current.length > 0) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(t);
    currentSize += size;
  }
  if (current.length > 0) shards.push(current);
  const n = shards.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  return {
    files: shards.map((ts, i) => ({
      file: n === 1 ? 'model.safetensors' : `model-${pad(i + 1)}-of-${pad(n)}.safetensors`,
      tensors: ts,
    })),
    totalSize,
  };
}

/** The index JSON of a plan with several files (null for one file: transformers writes none then). */
export function shardIndexJson(plan: ShardPlan): string | null {
  if (plan.files.length < 2) return null;
  const weightMap: Record<string, string> = {};
  const entries = plan.files.flatMap((f) => f.tensors.map((t) => [t.name, f.file] as const));
  for (const [name, file] of [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    weightMap[name] = file;
  return `${JSON.stringify({ metadata: { total_size: plan.totalSize }, weight_map: weightMap }, null, 2)}\n`;
}

// Writes a base checkpoint with an adapter merged in as a directory transformers loads with
// `from_pretrained`: float32 safetensors cut as save_pretrained cuts them (+ the index when there are
// several), the base's config.json, and the tokenizer files. Tensors stream through one at a time.
// Written into a sibling temporary directory and renamed into place, so a failed merge leaves no
// half-written model behind.
import { copyFile, mkdir, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SafetensorsFileWriter } from '../formats/safetensors-file-writer.ts';
import type { Checkpoint } from './checkpoint.ts';
import { type MergePlan, mergedTensors } from './merge-adapter.ts';
import { planShards, SAFETENSORS_INDEX, shardIndexJson } from './shard-plan.ts';

/** Files beside the weights that go along when present (tokenizer, generation defaults). */
export const COMPANION_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'generation_config.json',
] as const;

export interface MergedCheckpoint {
  readonly dir: string;
  readonly weightFiles: readonly string[];
  readonly totalSize: number;
  readonly mergedWeights: number;
  readonly companions: readonly string[];
}

async function emptyOrAbsent(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

/**
 * Merges `plan` into `ckpt` and writes the result to `outDir` (absent or empty). `companions` maps a
 * file name in the output to its source path (tokenizer.json etc.).
 */
export async function writeMergedCheckpoint(
  ckpt: Checkpoint,
  plan: MergePlan,
  outDir: string,
  o: { readonly maxShardSize: number; readonly companions: ReadonlyMap<string, string> },
): Promise<MergedCheckpoint> {
  if (!(await emptyOrAbsent(outDir))) {
    throw new Error(`--output_dir ${outDir} is not empty: name a new directory (nothing is overwritten)`);
  }
  const shards = planShards(
    ckpt.tensorInfo.map((t) => ({ name: t.name, shape: t.shape })),
    o.maxShardSize,
  );
  const tmp = join(dirname(outDir), `.${basename(outDir)}.partial-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const files = shards.files;
    let f = 0;
    let writer = await SafetensorsFileWriter.create(
      join(tmp, (files[0] as { file: string }).file),
      files[0]?.tensors ?? [],
    );
    let inFile = 0;
    for await (const t of mergedTensors(ckpt.tensors(), plan)) {
      while (inFile === (files[f]?.tensors.length ?? 0)) {
        await writer.close();
        f++;
        inFile = 0;
        const next = files[f];
        if (next === undefined) throw new Error(`${ckpt.dir}: more tensors than its table of contents lists`);
        writer = await SafetensorsFileWriter.create(join(tmp, next.file), next.tensors);
      }
      await writer.write(t);
      inFile++;
    }
    await writer.close();
    const index = shardIndexJson(shards);
    if (index !== null) await writeFile(join(tmp, SAFETENSORS_INDEX), index);
    await copyFile(join(ckpt.dir, 'config.json'), join(tmp, 'config.json'));
    for (const [name, from] of o.companions) await copyFile(from, join(tmp, name));
    if (await emptyOrAbsent(outDir)) await rmdir(outDir).catch(() => undefined);
    await mkdir(dirname(outDir), { recursive: true });
    await rename(tmp, outDir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return {
    dir: outDir,
    weightFiles: shards.files.map((s) => s.file),
    totalSize: shards.totalSize,
    mergedWeights: plan.size,
    companions: [...o.companions.keys()],
  };
}

// Writes a base checkpoint with an adapter merged in as a directory transformers loads with
// `from_pretrained`: safetensors in the chosen dtype (merged in float32, rounded once to nearest even
// on the way out, as PEFT's bf16/fp16 merge does) cut as save_pretrained cuts them (+ the index when
// there are several), the base's config.json with its dtype set, the tokenizer files, and
// generation_config.json / tokenizer_config.json as transformers writes them (generation-files.ts). Tensors stream through one at a time.
// Written into a sibling temporary directory and renamed into place, so a failed merge leaves no
// half-written model behind.
import { copyFile, mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { FloatDtype } from '../formats/dtypes.ts';
import { SafetensorsFileWriter } from '../formats/safetensors-file-writer.ts';
import type { Checkpoint } from './checkpoint.ts';
import { configWithDtype } from './config-dtype.ts';
import { writeGenerationFiles } from './generation-files.ts';
import { type MergePlan, mergedTensors } from './merge-adapter.ts';
import { TORCH_DTYPE_NAME } from './merged-dtype.ts';
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
  readonly dtype: FloatDtype;
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
 * Merges `plan` into `ckpt` and writes the result to `outDir` (absent or empty) as `dtype`. `companions`
 * maps a file name in the output to its source path (tokenizer.json etc.).
 */
export async function writeMergedCheckpoint(
  ckpt: Checkpoint,
  plan: MergePlan,
  outDir: string,
  o: {
    readonly dtype: FloatDtype;
    readonly maxShardSize: number;
    readonly companions: ReadonlyMap<string, string>;
  },
): Promise<MergedCheckpoint> {
  if (!(await emptyOrAbsent(outDir))) {
    throw new Error(`--output_dir ${outDir} is not empty: name a new directory (nothing is overwritten)`);
  }
  const shards = planShards(
    ckpt.tensorInfo.map((t) => ({ name: t.name, shape: t.shape })),
    o.maxShardSize,
    o.dtype,
  );
  const tmp = join(dirname(outDir), `.${basename(outDir)}.partial-${process.pid}`);
  const written = new Set(o.companions.keys());
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const files = shards.files;
    let f = 0;
    let writer = await SafetensorsFileWriter.create(
      join(tmp, (files[0] as { file: string }).file),
      files[0]?.tensors ?? [],
      o.dtype,
    );
    let inFile = 0;
    for await (const t of mergedTensors(ckpt.tensors(), plan)) {
      while (inFile === (files[f]?.tensors.length ?? 0)) {
        await writer.close();
        f++;
        inFile = 0;
        const next = files[f];
        if (next === undefined) throw new Error(`${ckpt.dir}: more tensors than its table of contents lists`);
        writer = await SafetensorsFileWriter.create(join(tmp, next.file), next.tensors, o.dtype);
      }
      await writer.write(t);
      inFile++;
    }
    await writer.close();
    const index = shardIndexJson(shards);
    if (index !== null) await writeFile(join(tmp, SAFETENSORS_INDEX), index);
    const configPath = join(ckpt.dir, 'config.json');
    const config = configWithDtype(await readFile(configPath, 'utf8'), TORCH_DTYPE_NAME[o.dtype], configPath);
    await writeFile(join(tmp, 'config.json'), config);
    for (const [name, from] of o.companions) await copyFile(from, join(tmp, name));
    // transformers' generate stops at EOS only when generation_config.json names it.
    for (const name of await writeGenerationFiles(tmp, ckpt.dir)) written.add(name);
    if (await emptyOrAbsent(outDir)) await rmdir(outDir).catch(() => undefined);
    await mkdir(dirname(outDir), { recursive: true });
    await rename(tmp, outDir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return {
    dir: outDir,
    dtype: o.dtype,
    weightFiles: shards.files.map((s) => s.file),
    totalSize: shards.totalSize,
    mergedWeights: plan.size,
    companions: [...written],
  };
}

// `--resume_from_checkpoint DIR` where DIR holds an adapter (a checkpoint-<step> or an adapter
// directory, also one Python PEFT saved): the LoRA settings come from its adapter_config.json, as
// PEFT's from_pretrained takes them, so a resumed adapter keeps its rank, alpha, dropout, targets
// rsLoRA scaling and DoRA. A LoRA flag given on the command line that disagrees is an error naming both values.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { adapterFeatures } from '../checkpoint/adapter-support.ts';
import { ADAPTER_CONFIG, type LoraConfig, parseLoraConfig } from '../checkpoint/peft-adapter.ts';
import { listCheckpoints } from '../train/checkpoint-dirs.ts';
import { UsageError } from './flags.ts';
import type { TrainingSettings } from './training-settings.ts';

const isFile = (p: string) =>
  stat(p).then(
    (s) => s.isFile(),
    () => false,
  );

/** The directory --resume_from_checkpoint means ("latest": the newest checkpoint), or null. */
async function resumeDir(s: TrainingSettings): Promise<string | null> {
  const dir = s.resumeFromCheckpoint;
  if (dir === undefined) return null;
  if (dir !== 'latest') return dir;
  const all = await listCheckpoints(s.outputDir);
  return all.length === 0 ? null : (all[all.length - 1] as { path: string }).path;
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

function conflict(flag: string, given: unknown, field: string, saved: unknown, path: string): never {
  throw new UsageError(
    `--${flag} ${JSON.stringify(given)} conflicts with ${field} ${JSON.stringify(saved)} in ${path}: drop --${flag} (the adapter's value is used) or resume from another adapter`,
  );
}

/** The settings with the resumed adapter's LoRA fields (unchanged when nothing is resumed). */
export async function adoptResumedLora(s: TrainingSettings): Promise<TrainingSettings> {
  const dir = await resumeDir(s);
  if (dir === null) return s;
  const path = join(dir, ADAPTER_CONFIG);
  if (!(await isFile(path))) return s; // the resume itself says what is missing
  let config: LoraConfig;
  try {
    config = parseLoraConfig(JSON.parse(await readFile(path, 'utf8')), path);
  } catch (err) {
    throw new UsageError(`--resume_from_checkpoint ${dir}: ${(err as Error).message}`);
  }
  const { useDora, layersToTransform } = adapterFeatures(config, 'training', path);
  if (typeof config.targetModules === 'string') {
    throw new UsageError(
      `${path}: target_modules is the regex ${JSON.stringify(config.targetModules)}; lora-mpt trains with a list of module names (--lora_target_modules)`,
    );
  }
  const given = s.loraGiven;
  if (given.loraR !== undefined && given.loraR !== config.r)
    conflict('lora_r', given.loraR, 'r', config.r, path);
  if (given.loraAlpha !== undefined && given.loraAlpha !== config.loraAlpha)
    conflict('lora_alpha', given.loraAlpha, 'lora_alpha', config.loraAlpha, path);
  if (given.loraDropout !== undefined && given.loraDropout !== config.loraDropout)
    conflict('lora_dropout', given.loraDropout, 'lora_dropout', config.loraDropout, path);
  if (given.loraTargetModules !== undefined && !sameSet(given.loraTargetModules, config.targetModules))
    conflict('lora_target_modules', given.loraTargetModules, 'target_modules', config.targetModules, path);
  if (given.useRslora !== undefined && given.useRslora !== config.useRslora)
    conflict('use_rslora', given.useRslora, 'use_rslora', config.useRslora, path);
  if (given.useDora !== undefined && given.useDora !== useDora)
    conflict('use_dora', given.useDora, 'use_dora', useDora, path);
  const sameBlocks = (a: readonly number[] | null, b: readonly number[] | null) =>
    a === null || b === null ? a === b : sameSet(a.map(String), b.map(String));
  if (given.layersToTransform !== undefined && !sameBlocks(given.layersToTransform, layersToTransform))
    conflict('layers_to_transform', given.layersToTransform, 'layers_to_transform', layersToTransform, path);
  return {
    ...s,
    loraR: config.r,
    loraAlpha: config.loraAlpha,
    loraDropout: config.loraDropout,
    loraTargetModules: [...config.targetModules],
    useRslora: config.useRslora,
    useDora,
    layersToTransform,
  };
}

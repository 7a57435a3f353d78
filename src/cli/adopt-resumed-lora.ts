// `--resume_from_checkpoint DIR` where DIR holds an adapter (a checkpoint-<step> or an adapter
// directory, also one Python PEFT saved): the LoRA settings come from its adapter_config.json, as
// PEFT's from_pretrained takes them, so a resumed adapter keeps its rank, alpha, dropout, targets
// rsLoRA scaling, DoRA and every other field of the LoRA spec. A LoRA flag given on the command line that disagrees is an error naming both values.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { adapterFeatures } from '../checkpoint/adapter-support.ts';
import { completeLoraSettings, loraConflict } from '../checkpoint/lora-spec.ts';
import { ADAPTER_CONFIG, type LoraConfig, parseLoraConfig } from '../checkpoint/peft-adapter.ts';
import { FAMILIES } from '../families/registry.ts';
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
  // Refuses what lora-mpt cannot train, by name. The base model is not opened yet: layers_pattern may
  // name any family's block list here; evaluation, generation and merge check the model's own.
  const anyFamily = { patterns: FAMILIES.map((f) => f.layersPattern), model: 'no model family' };
  adapterFeatures(config, 'training', path, anyFamily);
  const saved = config.lora;
  if (typeof saved.targetModules === 'string') {
    throw new UsageError(
      `${path}: target_modules is the regex ${JSON.stringify(saved.targetModules)}; lora-mpt trains with a list of module names (--lora_target_modules)`,
    );
  }
  const clash = loraConflict(s.loraGiven, saved);
  if (clash) conflict(clash.flag, clash.given, clash.field, clash.saved, path);
  return { ...s, lora: completeLoraSettings(saved) };
}

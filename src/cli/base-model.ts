// The run's base model as the coordinator and finetune's setup see it: a checkpoint (a directory or a
// Hugging Face id; config.json, fingerprint and weights on demand) or a synthetic model (synthetic:...,
// config.json only: src/families/synthetic-model.ts). No model is loaded here.
import { homedir } from 'node:os';
import type { ModelConfig } from '../checkpoint/architecture.ts';
import { openCheckpoint } from '../families/checkpoint.ts';
import { isSyntheticModel, openSyntheticModel } from '../families/synthetic-model.ts';
import type { HostTensor } from '../formats/host-tensor.ts';
import { hubOptionsFromEnv } from '../hub/hf-cache.ts';
import { resolveModel } from '../hub/models.ts';

export interface BaseModel {
  /** Where it is, for logs and loading: the checkpoint's directory, or the synthetic:... name. */
  readonly dir: string;
  readonly config: ModelConfig;
  readonly fingerprint: string;
  /** tokenizer.json beside the config, when present. */
  readonly tokenizerJson: string | null;
  /** A synthetic model: a config.json and nothing else. */
  readonly weightless: boolean;
  /** A weight tensor (DoRA's initial magnitudes read the base weights). */
  readTensor(name: string): Promise<HostTensor>;
}

/** Opens `baseModel`; `beforeOpening` runs on a checkpoint's directory before any weight file opens. */
export async function openBaseModel(
  baseModel: string,
  beforeOpening?: (modelDir: string) => Promise<void>,
): Promise<BaseModel> {
  if (isSyntheticModel(baseModel)) {
    const m = await openSyntheticModel(baseModel);
    return {
      dir: baseModel,
      weightless: true,
      config: m.config,
      fingerprint: m.fingerprint,
      tokenizerJson: m.tokenizerJson,
      readTensor: (name) =>
        Promise.reject(
          new Error(
            `${baseModel} has no weights, yet ${name} was asked for (DoRA's magnitudes start from the base weights): the synthetic backend trains plain LoRA only`,
          ),
        ),
    };
  }
  const model = await resolveModel(baseModel, process.env, 'main', hubOptionsFromEnv(process.env, homedir()));
  await beforeOpening?.(model.dir);
  const ckpt = await openCheckpoint(model.dir);
  return {
    dir: model.dir,
    weightless: false,
    config: ckpt.config,
    fingerprint: ckpt.fingerprint,
    tokenizerJson: model.tokenizerJson,
    readTensor: (name) => ckpt.readTensor(name),
  };
}

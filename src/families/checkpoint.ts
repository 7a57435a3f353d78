// Opening a checkpoint directory for whatever family its config.json names: the config parsed by the
// family the registry chooses from `model_type`, then the weights (src/checkpoint/checkpoint.ts).

import type { ModelConfig } from '../checkpoint/architecture.ts';
import {
  type Checkpoint,
  type OpenCheckpointOptions,
  openCheckpointWeights,
  readConfigJson,
} from '../checkpoint/checkpoint.ts';
import { parseModelConfig } from './registry.ts';

/** Reads and validates `dir`/config.json only (no weight file is opened): what the memory check
 * needs before anything large is read. */
export async function readCheckpointConfig(dir: string): Promise<{ config: ModelConfig; bytes: Buffer }> {
  const { json, bytes, path } = await readConfigJson(dir);
  return { config: parseModelConfig(json, path), bytes };
}

/** Opens `dir` (config.json + weights); throws naming the file and what is wrong. */
export async function openCheckpoint(dir: string, options: OpenCheckpointOptions = {}): Promise<Checkpoint> {
  const { config, bytes } = await readCheckpointConfig(dir);
  return openCheckpointWeights(dir, config, bytes, options);
}

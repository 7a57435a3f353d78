// Llama as the registry lists it: the pure parser, and its compute part loaded only when a model runs.
import type { ModelFamily } from '../types.ts';
import { LLAMA_LAYERS_PATTERN } from './architecture.ts';
import { parseLlamaConfig } from './config.ts';
import { LLAMA_NAMED_CONFIGS } from './named-configs.ts';
import { writeRandomLlama } from './random-checkpoint.ts';

export const LLAMA_FAMILY: ModelFamily = {
  modelType: 'llama',
  layersPattern: LLAMA_LAYERS_PATTERN,
  parseConfig: parseLlamaConfig,
  loadCompute: () => import('./compute.ts').then((m) => m.LLAMA_COMPUTE),
  namedConfigs: LLAMA_NAMED_CONFIGS,
  writeRandomCheckpoint: writeRandomLlama,
};

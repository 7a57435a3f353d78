// MPT as the registry lists it: the pure parser, and its compute part loaded only when a model runs.
import type { ModelFamily } from '../types.ts';
import { MPT_LAYERS_PATTERN } from './architecture.ts';
import { parseMptConfig } from './config.ts';
import { MPT_NAMED_CONFIGS } from './named-configs.ts';
import { writeRandomMpt } from './random-checkpoint.ts';

export const MPT_FAMILY: ModelFamily = {
  modelType: 'mpt',
  layersPattern: MPT_LAYERS_PATTERN,
  parseConfig: parseMptConfig,
  loadCompute: () => import('./compute.ts').then((m) => m.MPT_COMPUTE),
  namedConfigs: MPT_NAMED_CONFIGS,
  writeRandomCheckpoint: writeRandomMpt,
};

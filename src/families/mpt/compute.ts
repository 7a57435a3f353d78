// MPT's compute part (TensorFlow.js): loading a checkpoint into an MptModel. Imported lazily by
// spec.ts, so the coordinator, which reads MPT configs, never loads TensorFlow.js.
import type { FamilyCompute } from '../types.ts';
import { isMptConfig } from './config.ts';
import { loadMptModel } from './load.ts';

export const MPT_COMPUTE: FamilyCompute = {
  loadModel(config, tensors, options) {
    if (!isMptConfig(config)) throw new Error(`MPT loader: given a "${config.modelType}" config`);
    return loadMptModel(config, tensors, options);
  },
};

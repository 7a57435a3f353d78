// Llama's compute part (TensorFlow.js), imported lazily by spec.ts like MPT's.
import type { FamilyCompute } from '../types.ts';
import { isLlamaConfig } from './config.ts';
import { loadLlamaModel } from './load.ts';

export const LLAMA_COMPUTE: FamilyCompute = {
  loadModel(config, tensors, options) {
    if (!isLlamaConfig(config)) throw new Error(`Llama loader: given a "${config.modelType}" config`);
    return loadLlamaModel(config, tensors, options);
  },
};

// Llama configs by name, for a model described but never loaded (`--base_model synthetic:llama-3-8b`).
// The sizes are those of the published config.json files of each model.
import { llamaConfigJson } from './random-checkpoint.ts';

const LLAMA3_SCALING = (factor: number) => ({
  factor,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 8192,
});

const published = (o: Parameters<typeof llamaConfigJson>[0]) => ({
  ...llamaConfigJson(o),
  torch_dtype: 'bfloat16',
});

const llama3 = { vocabSize: 128256, ropeTheta: 500000, bosTokenId: 128000, eosTokenId: 128001 };

export const LLAMA_NAMED_CONFIGS: Readonly<Record<string, Record<string, unknown>>> = {
  'llama-2-7b': published({
    dModel: 4096,
    nHeads: 32,
    nLayers: 32,
    intermediateSize: 11008,
    vocabSize: 32000,
    maxSeqLen: 4096,
  }),
  'llama-3-8b': published({
    ...llama3,
    dModel: 4096,
    nHeads: 32,
    nKvHeads: 8,
    nLayers: 32,
    intermediateSize: 14336,
    maxSeqLen: 8192,
  }),
  'llama-3.1-8b': published({
    ...llama3,
    dModel: 4096,
    nHeads: 32,
    nKvHeads: 8,
    nLayers: 32,
    intermediateSize: 14336,
    maxSeqLen: 131072,
    llama3Scaling: LLAMA3_SCALING(8),
  }),
  'llama-3.2-1b': published({
    ...llama3,
    dModel: 2048,
    nHeads: 32,
    nKvHeads: 8,
    nLayers: 16,
    intermediateSize: 8192,
    maxSeqLen: 131072,
    tieWordEmbeddings: true,
    llama3Scaling: LLAMA3_SCALING(32),
  }),
  'tinyllama-1.1b': published({
    dModel: 2048,
    nHeads: 32,
    nKvHeads: 4,
    nLayers: 22,
    intermediateSize: 5632,
    vocabSize: 32000,
    maxSeqLen: 2048,
  }),
};

// MPT configs by name, for a model that is described but never loaded: `--base_model synthetic:mpt-7b`
// (the synthetic backend, docs/scale.md). The sizes are those of the published config.json files
// (docs/mpt-peft-facts.md §1.1 for mpt-7b); the rest is what mptConfigJson writes for every MPT.
import { mptConfigJson } from './random-checkpoint.ts';

const published = (dModel: number, nHeads: number, nLayers: number, maxSeqLen: number) => ({
  ...mptConfigJson({ dModel, nHeads, nLayers, maxSeqLen, vocabSize: 50432 }),
  torch_dtype: 'bfloat16',
});

export const MPT_NAMED_CONFIGS: Readonly<Record<string, Record<string, unknown>>> = {
  'mpt-7b': published(4096, 32, 32, 2048),
  'mpt-7b-8k': published(4096, 32, 32, 8192),
  'mpt-30b': published(7168, 64, 48, 8192),
};

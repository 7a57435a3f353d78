// From training flags to tokenized train and validation examples: load and check the rows, split
// off --val_set_size (seeded), tokenize with alpaca-lora's semantics, fingerprint the result. What
// the trainer and the coordinator call before buildDataPlan.
import { createHash } from 'node:crypto';
import type { HubOptions } from '../hub/hf-cache.ts';
import { type LoadedDataset, loadDataset } from './dataset.ts';
import { datasetFingerprint } from './fingerprint.ts';
import type { PromptTemplate } from './prompt-template.ts';
import { splitTrainVal } from './split.ts';
import {
  type Encoder,
  type TokenizedExample,
  type TokenizeOptions,
  tokenizeExample,
} from './tokenize-example.ts';

export interface PrepareOptions extends TokenizeOptions {
  readonly dataPath: string;
  readonly template: PromptTemplate;
  readonly valSetSize: number;
  readonly seed: number;
  readonly skipBadRows: boolean;
  readonly hub?: HubOptions;
}

export interface PreparedData {
  readonly loaded: LoadedDataset;
  readonly train: readonly TokenizedExample[];
  readonly val: readonly TokenizedExample[];
  /** Row numbers (into loaded.records) of train and val, ascending. */
  readonly trainRows: readonly number[];
  readonly valRows: readonly number[];
  /** sha256 of the tokenized train and val sets: changes with data, template, cutoff, masking, split. */
  readonly fingerprint: string;
}

export async function prepareData(encoder: Encoder, o: PrepareOptions): Promise<PreparedData> {
  const loaded = await loadDataset(o.dataPath, {
    skipBadRows: o.skipBadRows,
    ...(o.hub ? { hub: o.hub } : {}),
  });
  const split = splitTrainVal(loaded.records.length, o.valSetSize, o.seed);
  const tokenize = (rows: readonly number[]) =>
    rows.map((i) => tokenizeExample(encoder, o.template, loaded.records[i]!, o));
  const train = tokenize(split.train);
  const val = tokenize(split.val);
  const fingerprint = createHash('sha256')
    .update(`train:${datasetFingerprint(train)};val:${datasetFingerprint(val)}`)
    .digest('hex');
  return { loaded, train, val, trainRows: split.train, valRows: split.val, fingerprint };
}

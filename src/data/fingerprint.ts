// Fingerprints that tie a run to its data: the tokenized dataset (ids and labels, so template,
// cutoff, masking and tokenizer are all covered) and the plan flags. A checkpoint stores them; a
// resume with other data or other flags is refused instead of silently training on other batches.
import { createHash } from 'node:crypto';
import type { DataPlanOptions } from './data-plan.ts';
import type { TokenizedExample } from './tokenize-example.ts';

/** sha256 (hex) of the examples: count, then per example its length, ids and labels (LE int32). */
export function datasetFingerprint(examples: readonly TokenizedExample[]): string {
  const h = createHash('sha256');
  const head = new Uint32Array([examples.length]);
  h.update(new Uint8Array(head.buffer));
  for (const e of examples) {
    h.update(new Uint8Array(new Uint32Array([e.inputIds.length]).buffer));
    h.update(new Uint8Array(e.inputIds.buffer, e.inputIds.byteOffset, e.inputIds.byteLength));
    h.update(new Uint8Array(e.labels.buffer, e.labels.byteOffset, e.labels.byteLength));
  }
  return h.digest('hex');
}

/** sha256 (hex) of the dataset fingerprint and every option that shapes the plan. */
export function planFingerprint(datasetSha: string, o: Omit<DataPlanOptions, 'examples'>): string {
  const flags = {
    batchSize: o.batchSize,
    microBatchSize: o.microBatchSize,
    numEpochs: o.numEpochs,
    seed: o.seed,
    groupByLength: o.groupByLength,
    maxSteps: o.maxSteps ?? -1,
    padToMultipleOf: o.padToMultipleOf ?? 8,
    padTokenId: o.padTokenId ?? 0,
  };
  return createHash('sha256').update(datasetSha).update(JSON.stringify(flags)).digest('hex');
}

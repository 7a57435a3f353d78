// The batch a reference fixture model was run on (test/fixtures/mpt/<case>/inputs.json, written by
// tools/reference/make_mpt_fixtures.py): token ids, labels and the attention mask as one TokenBatch.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FixtureBatch {
  readonly rows: number;
  readonly seqLen: number;
  readonly inputIds: Int32Array;
  readonly labels: Int32Array;
  readonly attentionMask: Int32Array;
}

export function fixtureBatch(modelDir: string): FixtureBatch {
  const inputs = JSON.parse(readFileSync(join(modelDir, 'inputs.json'), 'utf8')) as Record<
    string,
    number[][]
  >;
  const flat = (k: string) => Int32Array.from((inputs[k] ?? []).flat());
  const rows = inputs.input_ids?.length ?? 0;
  if (rows === 0) throw new Error(`${modelDir}/inputs.json has no input_ids`);
  return {
    rows,
    seqLen: flat('input_ids').length / rows,
    inputIds: flat('input_ids'),
    labels: flat('labels'),
    attentionMask: flat('attention_mask'),
  };
}

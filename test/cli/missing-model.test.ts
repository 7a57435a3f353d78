import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeRandomMpt } from '../../src/families/mpt/random-checkpoint.ts';
import { startLoraMpt } from '../support/processes.ts';
import { SHARED_ALPACA, SHARED_TOKENIZER } from '../support/tiny-run.ts';

// Exit 2 is what the chart's podFailurePolicy turns into FailJob: a model that is not there will
// not appear by retrying, so the run must fail at once and say what is missing.
const root = mkdtempSync(join(tmpdir(), 'lora-mpt-missing-model-'));
const complete = join(root, 'complete');
const noConfig = join(root, 'no-config');
const missingShard = join(root, 'missing-shard');

before(async () => {
  await writeRandomMpt(complete, {
    dModel: 16,
    nHeads: 2,
    nLayers: 1,
    vocabSize: 64,
    maxSeqLen: 32,
    seed: 1,
  });
  copyFileSync(SHARED_TOKENIZER, join(complete, 'tokenizer.json'));
  mkdirSync(noConfig);
  copyFileSync(join(complete, 'model.safetensors'), join(noConfig, 'model.safetensors'));
  copyFileSync(join(complete, 'tokenizer.json'), join(noConfig, 'tokenizer.json'));
  mkdirSync(missingShard);
  for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(complete, f), join(missingShard, f));
  copyFileSync(join(complete, 'model.safetensors'), join(missingShard, 'model-00001-of-00002.safetensors'));
  const weightMap = {
    'transformer.wte.weight': 'model-00001-of-00002.safetensors',
    'transformer.norm_f.weight': 'model-00002-of-00002.safetensors',
  };
  writeFileSync(
    join(missingShard, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
});
after(() => rmSync(root, { recursive: true, force: true }));

const cases = [
  ['a directory that does not exist', join(root, 'nowhere', 'mpt-7b'), /nowhere\/mpt-7b: not a directory/],
  [
    'a directory without config.json',
    noConfig,
    /no-config: the model directory is incomplete, missing: config\.json/,
  ],
  [
    'a shard the index lists but the directory lacks',
    missingShard,
    /missing-shard: the model directory is incomplete, missing: model-00002-of-00002\.safetensors/,
  ],
] as const;

for (const command of ['coordinator', 'finetune'] as const) {
  describe(`lora-mpt ${command} with a missing or incomplete model`, () => {
    for (const [what, model, message] of cases) {
      it(`exits 2 naming what is missing: ${what}`, async () => {
        const extra = command === 'coordinator' ? ['--insecure', '--listen', '127.0.0.1:0'] : [];
        const p = startLoraMpt(command, [
          command,
          '--base_model',
          model,
          '--data_path',
          SHARED_ALPACA,
          '--output_dir',
          join(root, `out-${command}`),
          ...extra,
        ]);
        assert.equal(await p.exited(), 2, p.output());
        assert.match(p.output(), message);
      });
    }
  });
}

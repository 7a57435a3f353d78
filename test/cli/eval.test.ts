// `lora-mpt eval` on a tiny random MPT with the real GPT-NeoX tokenizer: the printed loss must be the
// naive autodiff model's mean cross-entropy over the same tokens, with and without an adapter.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loraTargets } from '../../src/checkpoint/lora-targets.ts';
import { newLoraConfig, writePeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { evalCommand } from '../../src/cli/eval.ts';
import { loadPromptTemplate } from '../../src/data/prompt-template.ts';
import { tokenizeExample } from '../../src/data/tokenize-example.ts';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { writeSafetensors } from '../../src/formats/safetensors.ts';
import { naiveMpt } from '../model/support/naive-mpt.ts';
import { hostTensors, randomLora, randomWeights, tinyConfig } from '../model/support/tiny-mpt.ts';

const TOKENIZER = fileURLToPath(new URL('../../../shared/data/gpt-neox-20b/tokenizer.json', import.meta.url));
const TEXT = 'The quick brown fox jumps over the lazy dog. Alpacas hum when they are curious.';
const configJson = {
  model_type: 'mpt',
  d_model: 8,
  n_heads: 2,
  n_layers: 1,
  vocab_size: 50432,
  max_seq_len: 64,
};

async function runEval(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    const code = await evalCommand.run(argv);
    return { code, out: lines.join('\n') };
  } finally {
    console.log = log;
  }
}

describe('lora-mpt eval', () => {
  let dir = '';
  const config = tinyConfig(configJson);
  const weights = randomWeights(config, 21);
  const lora = newLoraConfig({ r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['Wqkv'] }, null);
  const targets = loraTargets(config, lora.lora);
  const loraWeights = randomLora(targets, 2, 22);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lora-mpt-eval-'));
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ ...configJson, attn_config: { alibi: true } }),
    );
    await writeSafetensors(join(dir, 'model.safetensors'), hostTensors(config, weights));
    await writePeftAdapter(join(dir, 'adapter'), {
      config: lora,
      tensors: new Map(
        targets.flatMap((t) => [
          [
            t.aName,
            { name: t.aName, shape: [2, t.inFeatures], data: loraWeights.get(t.aName) as Float32Array },
          ],
          [
            t.bName,
            { name: t.bName, shape: [t.outFeatures, 2], data: loraWeights.get(t.bName) as Float32Array },
          ],
        ]),
      ),
    });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const withAdapter of [false, true]) {
    it(`prints the naive model's mean loss on a text ${withAdapter ? 'with' : 'without'} an adapter`, async () => {
      const ids = Int32Array.from(Tokenizer.fromFile(TOKENIZER).encode(TEXT));
      const argv = [
        '--base_model',
        dir,
        '--tokenizer',
        TOKENIZER,
        '--text',
        TEXT,
        '--backend',
        'cpu',
        '--json',
      ];
      if (withAdapter) argv.push('--lora_weights', join(dir, 'adapter'));
      const { code, out } = await runEval(argv);
      assert.equal(code, 0);
      const got = JSON.parse(out) as { loss: number; perplexity: number; tokens: number; examples: number };
      const batch = { rows: 1, seqLen: ids.length, inputIds: ids, labels: ids, attentionMask: null };
      const want = naiveMpt(
        config,
        weights,
        withAdapter ? { r: 2, scale: 2, weights: loraWeights } : null,
        batch,
      );
      assert.equal(got.tokens, ids.length - 1);
      assert.ok(Math.abs(got.loss - want.lossSum / (ids.length - 1)) < 1e-5 * got.loss, `${got.loss}`);
      assert.ok(Math.abs(got.perplexity - Math.exp(got.loss)) < 1e-9 * got.perplexity);
    });
  }

  it('evaluates Alpaca records, padded into micro-batches, like each record alone', async () => {
    const records = [
      { instruction: 'Name a color.', input: '', output: 'Blue.' },
      { instruction: 'Add the numbers.', input: '2 and 3', output: 'The sum is 5.' },
      { instruction: 'Say hi.', input: '', output: 'Hi there, nice to meet you!' },
    ];
    const dataPath = join(dir, 'data.json');
    await writeFile(dataPath, JSON.stringify(records));
    const argv = ['--base_model', dir, '--tokenizer', TOKENIZER, '--data_path', dataPath, '--backend', 'cpu'];
    const { code, out } = await runEval([
      ...argv,
      '--train_on_inputs=False',
      '--micro_batch_size',
      '2',
      '--json',
    ]);
    assert.equal(code, 0);
    const got = JSON.parse(out) as { loss: number; tokens: number; examples: number };
    const tokenizer = Tokenizer.fromFile(TOKENIZER);
    const template = loadPromptTemplate('alpaca');
    const opts = { cutoffLen: 256, trainOnInputs: false, addEosToken: false, eosTokenId: 0 };
    let lossSum = 0;
    let tokens = 0;
    for (const r of records) {
      const e = tokenizeExample(tokenizer, template, r, opts);
      const batch = {
        rows: 1,
        seqLen: e.inputIds.length,
        inputIds: e.inputIds,
        labels: e.labels,
        attentionMask: null,
      };
      lossSum += naiveMpt(config, weights, null, batch).lossSum;
      tokens += e.labels.slice(1).filter((l) => l !== -100).length;
    }
    assert.equal(got.examples, 3);
    assert.equal(got.tokens, tokens);
    assert.ok(Math.abs(got.loss - lossSum / tokens) < 1e-5 * got.loss, `${got.loss} vs ${lossSum / tokens}`);
  });

  it('refuses to run without data or with both data and text', async () => {
    await assert.rejects(evalCommand.run(['--base_model', dir]), /exactly one of --data_path and --text/);
  });
});

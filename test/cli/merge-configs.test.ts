// `lora-mpt merge` writes generation_config.json and tokenizer_config.json as transformers 5.24's
// save_pretrained writes them (test/fixtures/merge-configs, made by
// tools/reference/make_merge_config_fixtures.py), so transformers' generate on the merged folder
// stops at EOS. `stop/` carries where transformers' generate stopped on that folder (no eos passed:
// it read generation_config.json); lora-mpt's decoding on lora-mpt's merged folder stops there too.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { loadModel } from '../../src/families/load-model.ts';
import { decode, TRANSFORMERS_DEFAULTS } from '../../src/generate/decode.ts';
import { cachedLogits } from '../../src/generate/logits-source.ts';
import { initBackend } from '../../src/model/backend.ts';
import { SHARED_TOKENIZER } from '../support/tiny-run.ts';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const H6 = join(FIXTURES, 'mpt/h6-all');
const EXPECTED = join(FIXTURES, 'merge-configs');
const work = mkdtempSync(join(tmpdir(), 'lora-mpt-merge-configs-'));
after(() => rmSync(work, { recursive: true, force: true }));

const json = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));

async function merge(name: string, tokenizer: string): Promise<string> {
  const out = join(work, name);
  const adapter = join(H6, 'adapter_step3');
  await run(process.execPath, [
    BIN,
    'merge',
    '--base_model',
    H6,
    '--lora_weights',
    adapter,
    '--output_dir',
    out,
    '--tokenizer',
    tokenizer,
  ]);
  return out;
}

describe('lora-mpt merge: generation_config.json and tokenizer_config.json', () => {
  it("match transformers' own, key for key, for MPT's GPT-NeoX tokenizer (EOS = 0)", async () => {
    const out = await merge('neox', SHARED_TOKENIZER);
    for (const file of ['generation_config.json', 'tokenizer_config.json']) {
      assert.deepEqual(json(join(out, file)), json(join(EXPECTED, 'neox', file)), file);
    }
    assert.equal((json(join(out, 'generation_config.json')) as { eos_token_id: number }).eos_token_id, 0);
  });

  it("stop lora-mpt's greedy decoding on the merged folder where transformers' generate stopped", async () => {
    const out = await merge('stop', join(EXPECTED, 'stop', 'tokenizer.json'));
    for (const file of ['generation_config.json', 'tokenizer_config.json']) {
      assert.deepEqual(json(join(out, file)), json(join(EXPECTED, 'stop', file)), file);
    }
    const fx = json(join(EXPECTED, 'stop', 'generate.json')) as {
      prompt_ids: number[];
      max_new_tokens: number;
      tokens: number[];
      tokens_without_eos: number[];
    };
    // lora-mpt's generate takes EOS from the tokenizer beside the weights (src/generate/load-engine.ts).
    const eos = Tokenizer.fromFile(join(out, 'tokenizer.json')).tokenToId('<|endoftext|>') ?? null;
    const backend = await initBackend('wasm');
    const ckpt = await openCheckpoint(out);
    const model = await loadModel(ckpt.config, ckpt.tensors(), { layout: backend.layout });
    const source = cachedLogits(model);
    const r = await decode(source, Int32Array.from(fx.prompt_ids), {
      maxNewTokens: fx.max_new_tokens,
      numBeams: 1,
      doSample: false,
      temperature: 1,
      topK: 0,
      topP: 1,
      seed: null,
      eosTokenId: eos,
      ...TRANSFORMERS_DEFAULTS,
    });
    source.dispose();
    model.dispose();
    assert.deepEqual([...r.tokens], fx.tokens);
    assert.equal(r.finishReason, 'stop');
    assert.ok(fx.tokens.length < fx.tokens_without_eos.length, 'the fixture stops before max_new_tokens');
  });

  it("Llama: generation_config.json as transformers' for the base's tokenizer_config.json (<s> = 1, </s> = 2)", async () => {
    const base = join(work, 'llama-base');
    const from = join(FIXTURES, 'llama/gqa-untied-default');
    mkdirSync(base);
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(from, f), join(base, f));
    const tok = join(FIXTURES, '../data/fixtures/llama-tok/llama2');
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tok, f), join(base, f));
    const out = join(work, 'llama-merged');
    await run(process.execPath, [
      BIN,
      'merge',
      '--base_model',
      base,
      '--lora_weights',
      join(from, 'adapter_step3'),
      '--output_dir',
      out,
    ]);
    const gen = json(join(out, 'generation_config.json'));
    assert.deepEqual(gen, json(join(EXPECTED, 'llama2', 'generation_config.json')));
    // The base's tokenizer_config.json is carried over as it is: it is what names BOS and EOS.
    assert.deepEqual(json(join(out, 'tokenizer_config.json')), json(join(tok, 'tokenizer_config.json')));
  });
});

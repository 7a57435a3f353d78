// The generate server (`lora-mpt generate --port`) on a Llama folder: the GQA llama3-rope fixture
// with PEFT's adapter_init, as a real process on loopback. /v1/completions at temperature 0, greedy
// and with 4 beams, answers the tokens transformers' generate gave on the same model and prompt
// (test/fixtures/llama/gqa-tied-llama3/generate.json). The 96-token byte-level tokenizer of the
// generate fixtures has one token per character, so the prompt ids are sent as text and the answer
// read back as ids without merges in between.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { type LoraProcess, startLoraMpt } from '../support/processes.ts';
import { postJson } from './support/generate-server.ts';

const LLAMA = fileURLToPath(new URL('../fixtures/llama/gqa-tied-llama3/', import.meta.url));
const TOKENIZER = fileURLToPath(new URL('../fixtures/generate/cli/tokenizer.json', import.meta.url));

interface GenerateCase {
  readonly prompt: number[];
  readonly num_beams: number;
  readonly new_tokens: number[];
}

describe('the generate server on a Llama folder', () => {
  const fx = JSON.parse(readFileSync(`${LLAMA}generate.json`, 'utf8')) as {
    max_new_tokens: number;
    adapter: GenerateCase[];
  };
  const tok = Tokenizer.fromFile(TOKENIZER);
  let server: LoraProcess;
  let url = '';
  before(async () => {
    server = startLoraMpt('generate (llama)', [
      'generate',
      '--base_model',
      LLAMA,
      '--lora_weights',
      `${LLAMA}adapter_init`,
      '--tokenizer',
      TOKENIZER,
      '--port',
      '0',
      '--backend',
      'wasm',
    ]);
    url = (await server.waitForEvent('server_listening', undefined, { ms: 120_000 })).url as string;
  });
  after(async () => {
    await server?.kill('SIGTERM');
  });

  for (const beams of [1, 4])
    it(`/v1/completions (${beams === 1 ? 'greedy' : `${beams} beams`}) answers transformers' tokens`, async () => {
      const c = fx.adapter.find((x) => x.num_beams === beams)!;
      const prompt = tok.decode(c.prompt, { skipSpecialTokens: false });
      assert.deepEqual(tok.encode(prompt), c.prompt, 'the prompt text is its ids, one per character');
      const res = await postJson(url, '/v1/completions', {
        model: 'any',
        prompt,
        max_tokens: fx.max_new_tokens,
        temperature: 0,
        ...(beams > 1 ? { num_beams: beams } : {}),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as {
        model: string;
        choices: { text: string; finish_reason: string }[];
        usage: { prompt_tokens: number; completion_tokens: number };
      };
      assert.deepEqual(tok.encode(body.choices[0]!.text), c.new_tokens);
      assert.equal(body.usage.prompt_tokens, c.prompt.length);
      assert.equal(body.usage.completion_tokens, fx.max_new_tokens);
    });
});

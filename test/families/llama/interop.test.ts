// Llama adapters and the eval command against PEFT and transformers (fixtures of
// tools/reference/make_llama_fixtures.py): PEFT's adapters are read and written back byte for byte,
// a new adapter_config.json for a Llama is PEFT's own file, and `lora-mpt eval --text` prints the
// loss LlamaForCausalLM computes, with and without the adapter.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  loraConfigJson,
  newLoraConfig,
  readPeftAdapter,
  writePeftAdapter,
} from '../../../src/checkpoint/peft-adapter.ts';
import { evalCommand } from '../../../src/cli/eval.ts';

const ROOT = fileURLToPath(new URL('../../fixtures/llama/', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CASES = ['gqa-tied-llama3', 'gqa-untied-default', 'mha-dora-mlpbias'];

async function runEval(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    return { code: await evalCommand.run(argv), out: lines.join('\n') };
  } finally {
    console.log = log;
  }
}

describe('Llama adapters and eval against PEFT', () => {
  let tmp = '';
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'lora-mpt-llama-interop-'));
  });
  after(() => rm(tmp, { recursive: true, force: true }));

  for (const c of CASES) {
    it(`${c}: PEFT's adapters written back byte for byte`, async () => {
      for (const sub of ['adapter_init', 'adapter_step3']) {
        const src = join(ROOT, c, sub);
        const out = join(tmp, c, sub);
        await writePeftAdapter(out, await readPeftAdapter(src));
        for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
          assert.ok((await readFile(join(out, f))).equals(await readFile(join(src, f))), `${c}/${sub}/${f}`);
        }
      }
    });

    it(`${c}: a new adapter_config.json is PEFT's own`, async () => {
      const peft = await readFile(join(ROOT, c, 'adapter_init', 'adapter_config.json'), 'utf8');
      const saved = (await readPeftAdapter(join(ROOT, c, 'adapter_init'))).config.lora;
      const { r, loraAlpha, loraDropout, targetModules, useRslora, useDora } = saved;
      const mine = newLoraConfig(
        { r, loraAlpha, loraDropout, targetModules, useRslora, useDora },
        `test/fixtures/llama/${c}`,
      );
      assert.equal(loraConfigJson(mine), peft);
    });

    it(`${c}: eval --text prints transformers' loss, base and with the adapter`, async () => {
      const fx = JSON.parse(await readFile(join(ROOT, c, 'eval.json'), 'utf8')) as {
        text: string;
        tokenizer: string;
        base_loss: number;
        adapter_loss: number;
      };
      for (const adapter of [false, true]) {
        const argv = [
          '--base_model',
          join(ROOT, c),
          '--tokenizer',
          join(REPO, fx.tokenizer),
          '--text',
          fx.text,
        ];
        argv.push('--backend', 'cpu', '--json');
        if (adapter) argv.push('--lora_weights', join(ROOT, c, 'adapter_init'));
        const { code, out } = await runEval(argv);
        assert.equal(code, 0);
        const got = JSON.parse(out) as { loss: number };
        const want = adapter ? fx.adapter_loss : fx.base_loss;
        assert.ok(Math.abs(got.loss - want) < 1e-4 * want, `${c} adapter=${adapter}: ${got.loss} vs ${want}`);
      }
    });
  }
});

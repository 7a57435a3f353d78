// Decoding parity with transformers' `generate`, from tools/reference/make_generate_fixtures.py: on
// every committed fixture model (base alone and with PEFT's adapter), greedy and beam search (2, 3
// and 4 beams, with and without an EOS token) give the same new tokens, token for token; with the
// KV cache and without it. And the sampling warpers keep the same tokens with the same scores as
// transformers' TemperatureLogitsWarper → TopKLogitsWarper → TopPLogitsWarper.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { loadModel } from '../../src/families/load-model.ts';
import { decode, TRANSFORMERS_DEFAULTS } from '../../src/generate/decode.ts';
import { cachedLogits, uncachedLogits } from '../../src/generate/logits-source.ts';
import { warpLogits } from '../../src/generate/logits-warpers.ts';
import { layoutFor } from '../../src/model/backend.ts';
import type { CausalLm } from '../../src/model/causal-lm.ts';
import { describeOnBackends } from '../model/support/backends.ts';

const MODELS = fileURLToPath(new URL('../fixtures/mpt/', import.meta.url));
const EXPECTED = fileURLToPath(new URL('../fixtures/generate/', import.meta.url));

interface Run {
  readonly prompt: number[];
  readonly num_beams: number;
  readonly eos_token_id: number | null;
  readonly new_tokens: number[];
}
interface Fixture {
  readonly case: string;
  readonly max_new_tokens: number;
  readonly base: Run[];
  readonly adapter: Run[];
  readonly sampling: {
    readonly logits: number[];
    readonly warpers: {
      temperature: number;
      top_k: number;
      top_p: number;
      kept: number[];
      scores: number[];
    }[];
  };
}

const FIXTURES: Fixture[] = readdirSync(EXPECTED)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(EXPECTED, f), 'utf8')) as Fixture);

async function load(name: string, backend: string, adapter: boolean): Promise<CausalLm> {
  const ckpt = await openCheckpoint(join(MODELS, name));
  const model = await loadModel(ckpt.config, ckpt.tensors(), { layout: layoutFor(backend) });
  if (adapter) {
    const a = await readPeftAdapter(join(MODELS, name, 'adapter_init'));
    model.configureLora(a.config.lora);
    model.setLoraWeights(new Map([...a.tensors].map(([k, t]) => [k, t.data])));
  }
  return model;
}

async function runAll(model: CausalLm, fx: Fixture, runs: Run[], cached: boolean): Promise<string[]> {
  const wrong: string[] = [];
  for (const r of runs) {
    const source = cached ? cachedLogits(model) : uncachedLogits(model);
    const out = await decode(source, Int32Array.from(r.prompt), {
      maxNewTokens: fx.max_new_tokens,
      numBeams: r.num_beams,
      doSample: false,
      temperature: 1,
      topK: 0,
      topP: 1,
      seed: null,
      eosTokenId: r.eos_token_id,
      ...TRANSFORMERS_DEFAULTS,
    });
    source.dispose();
    const got = [...out.tokens];
    if (JSON.stringify(got) !== JSON.stringify(r.new_tokens)) {
      wrong.push(
        `prompt ${r.prompt.length} tokens, beams ${r.num_beams}, eos ${r.eos_token_id}: got [${got}], transformers [${r.new_tokens}]`,
      );
    }
  }
  return wrong;
}

describeOnBackends('decoding equals transformers generate', (backend) => {
  for (const fx of FIXTURES) {
    for (const which of ['base', 'adapter'] as const) {
      it(`${fx.case} ${which}: greedy and beam search, with the KV cache`, async () => {
        const model = await load(fx.case, backend, which === 'adapter');
        const wrong = await runAll(model, fx, fx[which], true);
        model.dispose();
        assert.deepEqual(wrong, [], wrong.join('\n'));
      });
    }
  }
  if (backend === 'wasm') {
    it('gives the same tokens without the KV cache (every step re-runs the sequence)', async () => {
      for (const fx of FIXTURES) {
        const model = await load(fx.case, backend, true);
        const wrong = await runAll(model, fx, fx.adapter, false);
        model.dispose();
        assert.deepEqual(wrong, [], wrong.join('\n'));
      }
    });
  }
});

it('sampling warpers keep the tokens transformers keeps, with its scores', () => {
  let checked = 0;
  let multi = 0; // cases where the cut falls between kept tokens, not after the first one
  for (const fx of FIXTURES) {
    const row = Float32Array.from(fx.sampling.logits);
    for (const w of fx.sampling.warpers) {
      const out = warpLogits(row, { temperature: w.temperature, topK: w.top_k, topP: w.top_p });
      const kept = [...out.keys()].filter((i) => Number.isFinite(out[i] as number));
      const what = `${fx.case} temperature ${w.temperature} top_k ${w.top_k} top_p ${w.top_p}`;
      assert.deepEqual(kept, w.kept, what);
      kept.forEach((i, j) => {
        assert.ok(Math.abs((out[i] as number) - (w.scores[j] as number)) < 1e-5, `${what}: token ${i}`);
      });
      assert.ok(kept.length < row.length, `${what} keeps every token: a weak case`);
      if (kept.length > 1) multi++;
      checked++;
    }
  }
  assert.equal(checked, 15);
  assert.ok(multi >= 12, `only ${multi} cases keep more than one token`);
});

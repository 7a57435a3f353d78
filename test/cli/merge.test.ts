// `lora-mpt merge` as a user runs it (a real process): the merged directory holds sharded
// safetensors, their index, config.json and the tokenizer; its logits equal PEFT's base + adapter
// (the committed fixtures); `lora-mpt eval` and `lora-mpt generate` take it as a base model and give
// what base + adapter gives. tools/reference/check_merged.py checks the same directory with
// transformers' from_pretrained (run by hand: CI has no Python).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { openCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { SafetensorsReader } from '../../src/formats/safetensors.ts';
import { initBackend } from '../../src/model/backend.ts';
import { forwardLogits } from '../../src/model/forward.ts';
import { loadMptModel } from '../../src/model/mpt-model.ts';
import { maxAbs, maxAbsDiff } from '../model/support/tiny-mpt.ts';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const H6 = join(FIXTURES, 'mpt/h6-all');
const CLI = join(FIXTURES, 'generate/cli');
const work = mkdtempSync(join(tmpdir(), 'lora-mpt-merge-'));

after(() => rmSync(work, { recursive: true, force: true }));

const lora = (...args: string[]) => run(process.execPath, [BIN, ...args]);

async function readAll(path: string): Promise<Map<string, Float32Array>> {
  const r = await SafetensorsReader.open(path);
  try {
    const out = new Map<string, Float32Array>();
    for await (const t of r.tensors()) out.set(t.name, t.data);
    return out;
  } finally {
    await r.close();
  }
}

async function logitsOf(dir: string, base: string): Promise<Float32Array> {
  const backend = await initBackend('wasm');
  const ckpt = await openCheckpoint(dir);
  const model = await loadMptModel(ckpt.config, ckpt.tensors(), { layout: backend.layout });
  const inputs = JSON.parse(readFileSync(join(FIXTURES, 'mpt', base, 'inputs.json'), 'utf8')) as Record<
    string,
    number[][]
  >;
  const flat = (k: string) => Int32Array.from((inputs[k] ?? []).flat());
  const rows = inputs.input_ids?.length ?? 0;
  const out = forwardLogits(model, {
    rows,
    seqLen: flat('input_ids').length / rows,
    inputIds: flat('input_ids'),
    attentionMask: flat('attention_mask'),
  });
  const data = out.dataSync() as Float32Array;
  out.dispose();
  model.dispose();
  return data;
}

describe('lora-mpt merge', () => {
  const merged = join(work, 'h6-merged');

  it('writes shards, index, config and tokenizer, with PEFT’s base + adapter logits', async () => {
    await lora(
      'merge',
      '--base_model',
      H6,
      '--lora_weights',
      join(H6, 'adapter_init'),
      '--output_dir',
      merged,
      '--max_shard_size',
      '100KB',
      '--tokenizer',
      join(CLI, 'tokenizer.json'),
    );
    const files = readdirSync(merged).sort();
    assert.deepEqual(files, [
      'config.json',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
    ]);
    const index = JSON.parse(readFileSync(join(merged, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(Object.keys(index.weight_map).length, 14);
    // The base's config.json, byte for byte, with transformers 5's `dtype` of the float32 base added
    // in its sorted place (as save_pretrained writes it).
    const config = readFileSync(join(merged, 'config.json'), 'utf8');
    assert.equal(JSON.parse(config).dtype, 'float32');
    assert.equal(
      config.replace('  "dtype": "float32",\n', ''),
      readFileSync(join(H6, 'config.json'), 'utf8'),
    );
    const want = (await readAll(join(H6, 'expected.safetensors'))).get('logits') as Float32Array;
    const got = await logitsOf(merged, 'h6-all');
    const err = maxAbsDiff(got, want) / maxAbs(want);
    assert.ok(err < 1e-5, `relative error ${err} against PEFT's base + adapter logits`);
  });

  it('merges a DoRA adapter made by PEFT into its merge_and_unload weights', async () => {
    const out = join(work, 'dora-merged');
    await lora(
      'merge',
      '--base_model',
      H6,
      '--lora_weights',
      join(FIXTURES, 'adapters/dora-h6'),
      '--output_dir',
      out,
    );
    assert.ok(readdirSync(out).includes('model.safetensors'), 'one file under 5GB, no index');
    const ckpt = await openCheckpoint(out);
    const want = await readAll(join(FIXTURES, 'adapters/dora-h6/merged_weights.safetensors'));
    for (const [name, w] of want) {
      const t = await ckpt.readTensor(name);
      assert.ok(maxAbsDiff(t.data, w) / maxAbs(w) < 1e-6, name);
    }
  });

  it('gives a model eval scores like base + adapter', async () => {
    const text = 'Q:hi\nA:some text to score, with punctuation!';
    const score = async (...model: string[]) =>
      JSON.parse(
        (
          await lora(
            'eval',
            ...model,
            '--text',
            text,
            '--json',
            '--backend',
            'wasm',
            '--tokenizer',
            join(CLI, 'tokenizer.json'),
          )
        ).stdout,
      ).loss as number;
    const viaAdapter = await score('--base_model', H6, '--lora_weights', join(H6, 'adapter_init'));
    const viaMerged = await score('--base_model', merged);
    assert.ok(Math.abs(viaAdapter - viaMerged) < 1e-5 * viaAdapter, `${viaAdapter} vs ${viaMerged}`);
  });

  it('gives a model whose generate answers are transformers’ base + adapter answers', async () => {
    const expected = JSON.parse(readFileSync(join(CLI, 'expected.json'), 'utf8')) as {
      runs: { instruction: string; adapter: boolean; num_beams: number; answer: string }[];
    };
    const r = expected.runs.find((x) => x.adapter && x.num_beams > 1);
    assert.ok(r !== undefined);
    const { stdout } = await lora(
      'generate',
      '--base_model',
      merged,
      '--prompt_template_name',
      join(CLI, 'template.json'),
      '--instruction',
      r.instruction,
      '--num_beams',
      String(r.num_beams),
      '--max_new_tokens',
      '16',
      '--backend',
      'wasm',
    );
    assert.equal(stdout, `${r.answer}\n`);
  });

  it('refuses to overwrite a directory and names unknown adapter fields', async () => {
    await assert.rejects(
      lora('merge', '--base_model', H6, '--lora_weights', join(H6, 'adapter_init'), '--output_dir', merged),
      (e: { stderr: string }) => /--output_dir .* is not empty/.test(e.stderr),
    );
    await assert.rejects(
      lora(
        'merge',
        '--base_model',
        H6,
        '--lora_weights',
        join(FIXTURES, 'adapters/rank-pattern-h6'),
        '--output_dir',
        join(work, 'x'),
      ),
      (e: { stderr: string }) => /rank_pattern .*not implemented/.test(e.stderr),
    );
    await assert.rejects(
      lora(
        'merge',
        '--base_model',
        H6,
        '--lora_weights',
        join(H6, 'adapter_init'),
        '--output_dir',
        join(work, 'y'),
        '--max_shard_size',
        '5 parsecs',
      ),
      (e: { code: number; stderr: string }) => e.code === 2 && /max_shard_size "5 parsecs"/.test(e.stderr),
    );
  });
});

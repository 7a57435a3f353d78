// `lora-mpt merge` as a user runs it (a real process): the merged directory holds sharded
// safetensors, their index, config.json and the tokenizer; its logits equal PEFT's base + adapter
// (the committed fixtures); `lora-mpt eval` and `lora-mpt generate` take it as a base model and give
// what base + adapter gives. tools/reference/check_merged.py checks the same directory with
// transformers' from_pretrained (run by hand: CI has no Python). `--dtype`: on the bf16 fixture model
// the written bf16/f16 weights are PEFT's own half-precision merge bit for bit
// (test/fixtures/merge-dtype, made by tools/reference/make_merge_dtype_fixtures.py).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { loadModel } from '../../src/families/load-model.ts';
import { initBackend } from '../../src/model/backend.ts';
import { forwardLogits } from '../../src/model/forward.ts';
import { fixtureBatch } from '../model/support/fixture-batch.ts';
import { maxAbs, maxAbsDiff } from '../model/support/tiny-mpt.ts';
import {
  differingHalfElements,
  type RawTensor,
  readRawSafetensors,
  readRawShards,
} from '../support/raw-safetensors.ts';
import { readSafetensorsFile } from '../support/safetensors-file.ts';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const H6 = join(FIXTURES, 'mpt/h6-all');
const H8 = join(FIXTURES, 'mpt/h8-clip-bf16');
const PEFT_HALF = join(FIXTURES, 'merge-dtype');
const CLI = join(FIXTURES, 'generate/cli');
const work = mkdtempSync(join(tmpdir(), 'lora-mpt-merge-'));

after(() => rmSync(work, { recursive: true, force: true }));

const lora = (...args: string[]) => run(process.execPath, [BIN, ...args]);

async function logitsOf(dir: string, base: string): Promise<Float32Array> {
  const backend = await initBackend('wasm');
  const ckpt = await openCheckpoint(dir);
  const model = await loadModel(ckpt.config, ckpt.tensors(), { layout: backend.layout });
  const out = forwardLogits(model, fixtureBatch(join(FIXTURES, 'mpt', base)));
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
      'generation_config.json',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
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
    const want = (await readSafetensorsFile(join(H6, 'expected.safetensors'))).get('logits') as Float32Array;
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
    const want = await readSafetensorsFile(join(FIXTURES, 'adapters/dora-h6/merged_weights.safetensors'));
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

const weightFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => /^model.*\.safetensors$/.test(f))
    .sort()
    .map((f) => join(dir, f));

/** Asserts `dir`'s weights hold every tensor of the PEFT fixture with the same dtype tag and bits. */
function assertPeftBits(dir: string, fixture: string, dtype: string): Map<string, RawTensor> {
  const got = readRawShards(weightFiles(dir));
  const differing: string[] = [];
  for (const [name, want] of readRawSafetensors(join(PEFT_HALF, fixture))) {
    const t = got.get(name);
    assert.ok(t !== undefined, `${dir} lacks ${name}`);
    assert.equal(t.dtype, dtype, name);
    assert.deepEqual(t.shape, want.shape, name);
    const n = differingHalfElements(t.bytes, want.bytes);
    if (n > 0) differing.push(`${name}: ${n} of ${want.bytes.length / 2}`);
  }
  assert.deepEqual(differing, [], `elements that differ from PEFT's merge (${fixture})`);
  return got;
}

describe('lora-mpt merge --dtype', () => {
  const rslora = join(FIXTURES, 'adapters/lora-rslora-h8');
  const auto = join(work, 'h8-auto');

  it('writes a bf16 base as bf16 by default: PEFT’s bf16 merge bit for bit, config dtype bfloat16', async () => {
    await lora('merge', '--base_model', H8, '--lora_weights', rslora, '--output_dir', auto);
    assert.deepEqual(readdirSync(auto).sort(), [
      'config.json',
      'generation_config.json',
      'model.safetensors',
    ]);
    assertPeftBits(auto, 'lora-rslora-h8.bf16.safetensors', 'BF16');
    assert.equal(JSON.parse(readFileSync(join(auto, 'config.json'), 'utf8')).dtype, 'bfloat16');
  });

  it('copies the tensors the adapter does not touch from a bf16 base bit for bit', () => {
    const base = readRawShards(weightFiles(H8));
    const adapted = new Set(
      JSON.parse(readFileSync(join(rslora, 'variant.json'), 'utf8')).merged_weights as string[],
    );
    const got = readRawSafetensors(join(auto, 'model.safetensors'));
    let copied = 0;
    for (const [name, t] of base) {
      if (adapted.has(name)) continue;
      assert.ok(got.get(name)?.bytes.equals(t.bytes), name);
      copied++;
    }
    assert.equal(copied, base.size - 4);
  });

  it('cuts --dtype bfloat16 shards by bf16 sizes, with PEFT’s bits', async () => {
    const out = join(work, 'h8-bf16-sharded');
    const limit = 20_000;
    await lora(
      'merge',
      '--base_model',
      H8,
      '--lora_weights',
      rslora,
      '--output_dir',
      out,
      '--dtype',
      'bfloat16',
      '--max_shard_size',
      `${limit}B`,
    );
    const peft = readRawSafetensors(join(PEFT_HALF, 'lora-rslora-h8.bf16.safetensors'));
    const peftBytes = [...peft.values()].reduce((n, t) => n + t.bytes.length, 0);
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(index.metadata.total_size, peftBytes);
    const files = weightFiles(out);
    for (const f of files) {
      const bytes = [...readRawSafetensors(f).values()].reduce((n, t) => n + t.bytes.length, 0);
      assert.ok(bytes <= limit, `${f}: ${bytes} bytes of tensors`);
    }
    // float32 sizes (twice the bytes) would need at least this many files.
    assert.ok(files.length < Math.ceil((2 * peftBytes) / limit), `${files.length} files`);
    assertPeftBits(out, 'lora-rslora-h8.bf16.safetensors', 'BF16');
  });

  it('writes --dtype float16 as PEFT’s float16 merge bit for bit', async () => {
    const out = join(work, 'h8-f16');
    await lora(
      'merge',
      '--base_model',
      H8,
      '--lora_weights',
      rslora,
      '--output_dir',
      out,
      '--dtype',
      'float16',
    );
    assertPeftBits(out, 'lora-rslora-h8.f16.safetensors', 'F16');
    assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).dtype, 'float16');
  });

  it('merges DoRA + rsLoRA on a bf16 base into PEFT’s bf16 DoRA weights', async () => {
    const out = join(work, 'h8-dora-bf16');
    const dora = join(FIXTURES, 'adapters/dora-rslora-h8');
    await lora('merge', '--base_model', H8, '--lora_weights', dora, '--output_dir', out);
    assertPeftBits(out, 'dora-rslora-h8.bf16.safetensors', 'BF16');
  });

  it('gives a bf16 model with the logits of PEFT’s bf16 merged model, which eval loads', async () => {
    const want = (await readSafetensorsFile(join(PEFT_HALF, 'lora-rslora-h8.bf16-logits.safetensors'))).get(
      'logits',
    ) as Float32Array;
    const got = await logitsOf(auto, 'h8-clip-bf16');
    const err = maxAbsDiff(got, want) / maxAbs(want);
    assert.ok(err < 1e-5, `relative error ${err} against PEFT's bf16 merged model`);
    // eval takes the merged directory as it takes PEFT's own bf16 weights beside the base's config.
    const peftDir = join(work, 'h8-peft-bf16');
    mkdirSync(peftDir);
    copyFileSync(join(H8, 'config.json'), join(peftDir, 'config.json'));
    copyFileSync(join(PEFT_HALF, 'lora-rslora-h8.bf16.safetensors'), join(peftDir, 'model.safetensors'));
    const score = async (dir: string) =>
      JSON.parse(
        (
          await lora(
            'eval',
            '--base_model',
            dir,
            '--text',
            'Q:hi\nA:bf16 weights',
            '--json',
            '--backend',
            'wasm',
            '--tokenizer',
            join(CLI, 'tokenizer.json'),
          )
        ).stdout,
      ).loss as number;
    assert.equal(await score(auto), await score(peftDir));
  });

  it('refuses an unknown --dtype, listing the choices', async () => {
    await assert.rejects(
      lora(
        'merge',
        '--base_model',
        H8,
        '--lora_weights',
        rslora,
        '--output_dir',
        join(work, 'z'),
        '--dtype',
        'int8',
      ),
      (e: { code: number; stderr: string }) =>
        e.code === 2 && /--dtype "int8".*auto, float32, bfloat16, float16/.test(e.stderr),
    );
  });
});

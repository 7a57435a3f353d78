// `lora-mpt finetune` on a model too big for the memory it has exits before reading any weight, with
// the numbers and the flag that would make it fit. The checkpoints here are config.json, a shard
// index and EMPTY shard files (present, as the completeness check asks, but holding no weight), so a
// check that came after opening them would fail there.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startLoraMpt } from '../support/processes.ts';

const DATA = fileURLToPath(new URL('../data/fixtures/alpaca-tiny.parquet', import.meta.url));

async function configOnlyCheckpoint(dir: string, shape: Record<string, number>): Promise<void> {
  const config = { model_type: 'mpt', expansion_ratio: 4, attn_config: { alibi: true }, ...shape };
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  const index = {
    metadata: { total_size: 0 },
    weight_map: { 'transformer.wte.weight': 'pytorch_model-00001-of-00002.bin' },
  };
  await writeFile(join(dir, 'pytorch_model.bin.index.json'), JSON.stringify(index));
  for (const shard of new Set(Object.values(index.weight_map))) await writeFile(join(dir, shard), '');
}

async function finetune(
  model: string,
  out: string,
  extra: string[],
): Promise<{ code: number | null; text: string }> {
  const p = startLoraMpt('finetune', [
    'finetune',
    '--base_model',
    model,
    '--data_path',
    DATA,
    '--output_dir',
    out,
    '--micro_batch_size',
    '4',
    '--batch_size',
    '4',
    '--cutoff_len',
    '256',
    ...extra,
  ]);
  const code = await p.exited();
  return { code, text: p.output() };
}

describe('memory check before loading', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lora-mpt-memory-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses MPT-7B in float32 on 20 GiB, naming the numbers and --load_8bit', async () => {
    const model = join(dir, 'mpt-7b-shapes');
    await mkdir(model);
    await configOnlyCheckpoint(model, {
      d_model: 4096,
      n_heads: 32,
      n_layers: 32,
      vocab_size: 50432,
      max_seq_len: 2048,
    });
    const r = await finetune(model, join(dir, 'out-7b'), ['--device_memory_gb', '20']);
    assert.equal(r.code, 1, r.text);
    assert.match(
      r.text,
      /not enough memory: MPT with 6\.65B parameters \(d_model 4096, 32 layers\) needs \d+\.\d GiB at float32/,
    );
    assert.match(
      r.text,
      /but 20\.0 GiB is given by --device_memory_gb; --load_8bit would fit it in \d+\.\d GiB/,
    );
    assert.doesNotMatch(r.text, /pytorch_model-00001-of-00002\.bin/);
  });

  it('refuses a 300B-parameter shape on this machine whatever the flags, saying so', async () => {
    const model = join(dir, 'huge-shapes');
    await mkdir(model);
    await configOnlyCheckpoint(model, {
      d_model: 16384,
      n_heads: 128,
      n_layers: 96,
      vocab_size: 50432,
      max_seq_len: 2048,
    });
    const r = await finetune(model, join(dir, 'out-huge'), ['--load_8bit', '--gradient_checkpointing']);
    assert.equal(r.code, 1, r.text);
    assert.match(
      r.text,
      /needs \d+\.\d GiB at int8 \(--load_8bit\).* but \d+\.\d GiB is (available on this machine \(MemAvailable\)|this process's cgroup limit)/,
    );
    assert.match(
      r.text,
      /no flag makes it fit \(--micro_batch_size 1 --cutoff_len 128 still needs \d+\.\d GiB\): use a machine with more memory/,
    );
  });
});

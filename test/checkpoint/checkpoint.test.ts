import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { CASES, collect, FIXTURES, sameBits } from './fixtures.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lora-mpt-ckpt-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of a fixture case that a test may damage. */
function copyCase(c: string, name: string): string {
  const dir = join(tmp, name);
  cpSync(join(FIXTURES, c), dir, { recursive: true });
  return dir;
}

const MPT_NAMES = [
  'transformer.wte.weight',
  'transformer.norm_f.weight',
  ...[0, 1].flatMap((i) =>
    ['norm_1', 'attn.Wqkv', 'attn.out_proj', 'norm_2', 'ffn.up_proj', 'ffn.down_proj'].map(
      (m) => `transformer.blocks.${i}.${m}.weight`,
    ),
  ),
].sort();

describe('opening an MPT checkpoint directory', () => {
  for (const c of CASES) {
    it(`${c}: safetensors and .bin give the same tensors, bitwise`, async () => {
      const st = await openCheckpoint(join(FIXTURES, c));
      const bin = await openCheckpoint(join(FIXTURES, c), { format: 'bin' });
      assert.equal(st.format, 'safetensors');
      assert.equal(bin.format, 'bin');
      assert.deepEqual(st.tensorInfo.map((t) => t.name).sort(), MPT_NAMES);
      const a = await collect(st.tensors());
      const b = await collect(bin.tensors());
      assert.deepEqual([...a.keys()].sort(), MPT_NAMES);
      for (const [name, t] of a) {
        assert.deepEqual(b.get(name)!.shape, t.shape);
        assert.ok(sameBits(b.get(name)!.data, t.data), `${c} ${name}`);
      }
      assert.equal(a.get('transformer.blocks.0.attn.Wqkv.weight')!.shape[0], 3 * st.config.dModel);
    });
  }

  it('follows the shard index of a 2-shard .bin (h6-all) and a 2-shard safetensors (h8-clip-bf16)', async () => {
    const bin = await openCheckpoint(join(FIXTURES, 'h6-all'), { format: 'bin' });
    assert.deepEqual(bin.files, ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']);
    const index = JSON.parse(readFileSync(join(FIXTURES, 'h6-all/pytorch_model.bin.index.json'), 'utf8'));
    for (const t of bin.tensorInfo) assert.equal(t.file, index.weight_map[t.name], t.name);
    const st = await openCheckpoint(join(FIXTURES, 'h8-clip-bf16'));
    assert.deepEqual(st.files, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    assert.ok(st.tensorInfo.every((t) => t.dtype === 'BF16'));
  });

  it('reads one tensor by name', async () => {
    const ck = await openCheckpoint(join(FIXTURES, 'h6-all'), { format: 'bin' });
    const t = await ck.readTensor('transformer.norm_f.weight');
    assert.deepEqual(t.shape, [48]);
    await assert.rejects(ck.readTensor('lm_head.weight'), /has no tensor "lm_head.weight"/);
  });

  it('gives a fingerprint that is stable, and differs across checkpoints, formats and configs', async () => {
    const a1 = (await openCheckpoint(join(FIXTURES, 'h12-wqkv'))).fingerprint;
    const a2 = (await openCheckpoint(join(FIXTURES, 'h12-wqkv'))).fingerprint;
    assert.match(a1, /^[0-9a-f]{64}$/);
    assert.equal(a1, a2);
    assert.notEqual(a1, (await openCheckpoint(join(FIXTURES, 'h6-all'))).fingerprint);
    assert.notEqual(a1, (await openCheckpoint(join(FIXTURES, 'h12-wqkv'), { format: 'bin' })).fingerprint);
    const moved = copyCase('h12-wqkv', 'moved');
    assert.equal((await openCheckpoint(moved)).fingerprint, a1, 'the directory path is not part of it');
    const cfg = JSON.parse(readFileSync(join(moved, 'config.json'), 'utf8'));
    writeFileSync(join(moved, 'config.json'), JSON.stringify({ ...cfg, layer_norm_epsilon: 1e-6 }));
    assert.notEqual((await openCheckpoint(moved)).fingerprint, a1);
  });

  it('says which files it expected when there are no weights', async () => {
    const dir = join(tmp, 'empty');
    cpSync(join(FIXTURES, 'h12-wqkv/config.json'), join(dir, 'config.json'));
    await assert.rejects(
      openCheckpoint(dir),
      /no weights found: expected one of model\.safetensors\.index\.json, model\.safetensors, pytorch_model\.bin\.index\.json, pytorch_model\.bin/,
    );
    await assert.rejects(openCheckpoint(join(tmp, 'nowhere')), /config\.json: not found/);
  });

  it('refuses an index that points outside the directory, misses a shard, or disagrees with it', async () => {
    const dir = copyCase('h6-all', 'bad-index');
    const path = join(dir, 'pytorch_model.bin.index.json');
    const index = JSON.parse(readFileSync(path, 'utf8'));
    const write = (weightMap: Record<string, string>) =>
      writeFileSync(path, JSON.stringify({ ...index, weight_map: weightMap }));
    write({ ...index.weight_map, 'transformer.wte.weight': '../../etc/passwd' });
    await assert.rejects(
      openCheckpoint(dir, { format: 'bin' }),
      /must be a shard file name in the same directory/,
    );
    write({ ...index.weight_map, 'transformer.wte.weight': 'pytorch_model-00002-of-00002.bin' });
    await assert.rejects(
      openCheckpoint(dir, { format: 'bin' }),
      /lists "transformer\.wte\.weight" in pytorch_model-00002/,
    );
    const { 'transformer.norm_f.weight': _, ...fewer } = index.weight_map;
    write(fewer);
    await assert.rejects(
      openCheckpoint(dir, { format: 'bin' }),
      /holds "transformer\.norm_f\.weight", which the index does not list/,
    );
    write(index.weight_map);
    unlinkSync(join(dir, 'pytorch_model-00002-of-00002.bin'));
    await assert.rejects(openCheckpoint(dir, { format: 'bin' }), /pytorch_model-00002-of-00002\.bin/);
  });

  it('names the config field when config.json is invalid', async () => {
    const dir = copyCase('h12-wqkv', 'bad-config');
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, n_heads: 5 }));
    await assert.rejects(
      openCheckpoint(dir),
      /config\.json: "d_model" \(48\) must be divisible by "n_heads" \(5\)/,
    );
  });
});

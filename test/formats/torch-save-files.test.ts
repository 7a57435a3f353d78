import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TorchBinReader } from '../../src/formats/torch-bin.ts';
import { collect } from '../checkpoint/fixtures.ts';

// Files written by real torch.save (tools/reference/make_pickle_fixtures.py), with the values torch holds.
const DIR = fileURLToPath(new URL('../fixtures/torch-save/', import.meta.url));
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Record<
  string,
  Record<string, number[]>
>;

async function checkAgainstTorch(file: string): Promise<void> {
  const tensors = await collect((await TorchBinReader.open(join(DIR, file))).tensors());
  const want = expected[file]!;
  assert.deepEqual([...tensors.keys()].sort(), Object.keys(want).sort());
  for (const [name, values] of Object.entries(want)) {
    const t = tensors.get(name)!;
    assert.deepEqual(t.shape, expected.shapes![name], name);
    assert.deepEqual([...t.data], values.map(Math.fround), name);
  }
}

describe('torch.save files written by torch', () => {
  it('reads module.state_dict(): an OrderedDict whose `_metadata` arrives through BUILD', async () => {
    await checkAgainstTorch('state-dict-metadata.bin');
  });

  it('reads f16 tensors that share one storage (a row slice and a transpose)', async () => {
    await checkAgainstTorch('fp16-shared.bin');
  });

  it('explains that the pre-1.6 (non-zip) format is not supported', async () => {
    await assert.rejects(
      TorchBinReader.open(join(DIR, 'legacy-format.bin')),
      /not a zip archive .* legacy \(pre-1\.6\) torch\.save file/,
    );
  });
});

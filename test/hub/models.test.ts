import assert from 'node:assert/strict';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { hubCacheDir, ModelNotFoundError, resolveModel } from '../../src/hub/models.ts';
import { FIXTURES } from '../checkpoint/fixtures.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lora-mpt-hub-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const COMMIT = 'd8304854d4877849c3c0a78f3469512a84419e84';

/** The layout huggingface_hub writes: blobs/<hash>, snapshots/<commit>/<file> → ../../blobs/<hash>, refs/main. */
function cacheRepo(cache: string, repoId: string, files: readonly string[], from: string): string {
  const repo = join(cache, `models--${repoId.replace('/', '--')}`);
  const snap = join(repo, 'snapshots', COMMIT);
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(snap, { recursive: true });
  mkdirSync(join(repo, 'refs'), { recursive: true });
  files.forEach((f, i) => {
    const blob = `blob${i}${'0'.repeat(30)}`;
    copyFileSync(join(from, f), join(repo, 'blobs', blob));
    symlinkSync(join('..', '..', 'blobs', blob), join(snap, f));
  });
  writeFileSync(join(repo, 'refs', 'main'), COMMIT);
  return snap;
}

const H6 = join(FIXTURES, 'h6-all');
const H6_FILES = [
  'config.json',
  'pytorch_model.bin.index.json',
  'pytorch_model-00001-of-00002.bin',
  'pytorch_model-00002-of-00002.bin',
];

describe('resolving a Hub id from the local Hugging Face cache', () => {
  it('finds models--org--name/snapshots/<refs/main> under HF_HOME/hub and opens it', async () => {
    const home = join(tmp, 'hf-home');
    const snap = cacheRepo(join(home, 'hub'), 'mosaicml/mpt-tiny', H6_FILES, H6);
    const m = await resolveModel('mosaicml/mpt-tiny', { HF_HOME: home, HOME: '/nonexistent' });
    assert.deepEqual(m, {
      dir: snap,
      source: 'hf-cache',
      repoId: 'mosaicml/mpt-tiny',
      commit: COMMIT,
      tokenizerJson: null,
    });
    const ck = await openCheckpoint(m.dir);
    assert.equal(ck.format, 'bin');
    assert.equal(ck.config.nHeads, 6);
  });

  it('prefers HF_HUB_CACHE over HF_HOME, and falls back to ~/.cache/huggingface/hub', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h', HOME: '/u' }), '/c');
    assert.equal(hubCacheDir({ HF_HOME: '/h', HOME: '/u' }), join('/h', 'hub'));
    assert.equal(hubCacheDir({ HOME: '/u' }), join('/u', '.cache', 'huggingface', 'hub'));
  });

  it('resolves through HOME and an explicit commit revision', async () => {
    const user = join(tmp, 'user');
    const snap = cacheRepo(
      join(user, '.cache', 'huggingface', 'hub'),
      'org/h12',
      ['config.json', 'model.safetensors'],
      join(FIXTURES, 'h12-wqkv'),
    );
    assert.equal((await resolveModel('org/h12', { HOME: user })).dir, snap);
    assert.equal((await resolveModel('org/h12', { HOME: user }, COMMIT)).dir, snap);
  });

  it('uses an existing directory as is', async () => {
    const m = await resolveModel(H6, {});
    assert.equal(m.dir, H6);
    assert.equal(m.source, 'directory');
  });

  it('offline with no cache: says what to download and where to put it', async () => {
    const cache = join(tmp, 'empty-cache');
    await assert.rejects(resolveModel('mosaicml/mpt-7b-instruct', { HF_HUB_CACHE: cache }), (e: Error) => {
      assert.ok(e instanceof ModelNotFoundError);
      for (const s of [
        'mosaicml/mpt-7b-instruct is not a local directory and is not in the Hugging Face cache',
        join(cache, 'models--mosaicml--mpt-7b-instruct', 'refs', 'main'),
        'https://huggingface.co/mosaicml/mpt-7b-instruct/tree/main',
        'config.json, tokenizer.json',
        'pytorch_model-00001-of-00002.bin',
        join(cache, 'models--mosaicml--mpt-7b-instruct', 'snapshots', '<commit>'),
        'huggingface-cli download mosaicml/mpt-7b-instruct',
      ]) {
        assert.ok(e.message.includes(s), `message lacks "${s}":\n${e.message}`);
      }
      return true;
    });
  });

  it('names the exact shard missing from a partly downloaded snapshot', async () => {
    const cache = join(tmp, 'partial');
    const snap = cacheRepo(cache, 'org/partial', H6_FILES, H6);
    unlinkSync(join(snap, 'pytorch_model-00002-of-00002.bin'));
    await assert.rejects(
      resolveModel('org/partial', { HF_HUB_CACHE: cache }),
      /the cached snapshot .* is incomplete\.\nDownload from https:\/\/huggingface\.co\/org\/partial\/tree\/main: pytorch_model-00002-of-00002\.bin\n/,
    );
  });

  it('refuses something that is neither a directory nor an org/name id', async () => {
    await assert.rejects(
      resolveModel('./no/such/dir', { HOME: tmp }),
      /not a directory, and not a Hugging Face Hub id/,
    );
  });
});

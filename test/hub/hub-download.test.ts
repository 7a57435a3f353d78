import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { writeRandomMpt } from '../../src/families/mpt/random-checkpoint.ts';
import { hubOptionsFromEnv } from '../../src/hub/hf-cache.ts';
import { modelFiles } from '../../src/hub/hub-download.ts';
import { ModelNotFoundError, resolveModel } from '../../src/hub/models.ts';
import { SHARED_TOKENIZER } from '../support/tiny-run.ts';

// A stand-in for the Hub's HTTP API on loopback, serving a real (tiny, random) MPT checkpoint.
describe('downloading a model id into the Hugging Face cache', () => {
  const root = mkdtempSync(join(tmpdir(), 'lora-mpt-hubdl-'));
  const source = join(root, 'source');
  const sha = 'c'.repeat(40);
  const requested: string[] = [];
  let endpoint = '';
  const server = createServer((req, res) => {
    requested.push(req.url ?? '');
    // The Hub's API takes ?blobs=true for sizes and checksums (this stand-in has none).
    if (req.url?.split('?')[0] === '/api/models/mosaicml/mpt-tiny/revision/main') {
      const siblings = [...readdirSync(source), 'README.md', 'modeling_mpt.py'].map((rfilename) => ({
        rfilename,
      }));
      res.end(JSON.stringify({ sha, siblings }));
      return;
    }
    const m = new RegExp(`^/mosaicml/mpt-tiny/resolve/${sha}/([^/]+)$`).exec(req.url ?? '');
    if (m && readdirSync(source).includes(m[1]!)) res.end(readFileSync(join(source, m[1]!)));
    else res.writeHead(404).end();
  });

  before(async () => {
    await writeRandomMpt(source, {
      dModel: 16,
      nHeads: 2,
      nLayers: 1,
      vocabSize: 64,
      maxSeqLen: 32,
      seed: 3,
    });
    copyFileSync(SHARED_TOKENIZER, join(source, 'tokenizer.json'));
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('fetches config, tokenizer and weights (no remote code), then opens them like the source', async () => {
    const hub = { ...hubOptionsFromEnv({ HF_HUB_CACHE: join(root, 'cache') }, root), endpoint };
    const m = await resolveModel('mosaicml/mpt-tiny', {}, 'main', hub);
    assert.equal(m.source, 'hf-cache');
    assert.equal(m.dir, join(root, 'cache', 'models--mosaicml--mpt-tiny', 'snapshots', sha));
    assert.deepEqual(readdirSync(m.dir).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    assert.ok(!requested.some((u) => u.endsWith('.py') || u.endsWith('README.md')));
    assert.equal((await openCheckpoint(m.dir)).fingerprint, (await openCheckpoint(source)).fingerprint);
    // Now cached: found offline without asking the server again.
    const before = requested.length;
    const again = await resolveModel('mosaicml/mpt-tiny', {}, 'main', { ...hub, offline: true });
    assert.equal(again.dir, m.dir);
    assert.equal(requested.length, before);
  });

  it('says what to download and where when offline, and why a download failed', async () => {
    const hub = hubOptionsFromEnv({ HF_HUB_CACHE: join(root, 'empty'), HF_HUB_OFFLINE: '1' }, root);
    await assert.rejects(resolveModel('mosaicml/mpt-tiny', {}, 'main', hub), (e: Error) => {
      assert.ok(e instanceof ModelNotFoundError);
      assert.match(e.message, /HF_HUB_OFFLINE is set/);
      assert.match(e.message, /models--mosaicml--mpt-tiny/);
      return true;
    });
    const online = { ...hub, offline: false, endpoint };
    await assert.rejects(
      resolveModel('mosaicml/mpt-nothere', {}, 'main', online),
      /could not be downloaded \(GET .*HTTP 404\)/,
    );
  });

  it('prefers safetensors and otherwise takes the .bin shards MPT-7B ships', () => {
    const mpt7b = [
      'config.json',
      'configuration_mpt.py',
      'pytorch_model-00001-of-00002.bin',
      'pytorch_model-00002-of-00002.bin',
      'pytorch_model.bin.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'README.md',
    ];
    assert.deepEqual(modelFiles(mpt7b).sort(), [
      'config.json',
      'pytorch_model-00001-of-00002.bin',
      'pytorch_model-00002-of-00002.bin',
      'pytorch_model.bin.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    assert.deepEqual(modelFiles([...mpt7b, 'model.safetensors']).sort(), [
      'config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
  });
});

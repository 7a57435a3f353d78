import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { writeRandomMpt } from '../../src/families/mpt/random-checkpoint.ts';
import { resolveModel } from '../../src/hub/models.ts';
import { startTinyHub, type TinyHub } from '../support/hub-server.ts';
import { startLoraMpt } from '../support/processes.ts';
import { SHARED_TOKENIZER } from '../support/tiny-run.ts';

const REPO = 'mosaicml/mpt-tiny';
const COMMIT = 'e'.repeat(40);
const root = mkdtempSync(join(tmpdir(), 'lora-mpt-fetch-'));
const source = join(root, 'source');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let hub: TinyHub;

before(async () => {
  await writeRandomMpt(source, { dModel: 64, nHeads: 2, nLayers: 2, vocabSize: 512, maxSeqLen: 32, seed: 5 });
  copyFileSync(SHARED_TOKENIZER, join(source, 'tokenizer.json'));
  hub = await startTinyHub({ repoId: REPO, source, commit: COMMIT, extra: ['README.md', 'modeling_mpt.py'] });
});
after(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

async function fetchCli(cache: string, ...more: string[]) {
  const p = startLoraMpt('fetch', [
    'fetch',
    '--repo_id',
    REPO,
    '--endpoint',
    hub.endpoint,
    '--cache_dir',
    cache,
    '--log_format',
    'json',
    ...more,
  ]);
  return { code: await p.exited(), p };
}

const repoDir = (cache: string) => join(cache, 'models--mosaicml--mpt-tiny');

describe('lora-mpt fetch from the Hub API', () => {
  it('stages blobs, snapshot symlinks and refs/main as huggingface_hub does; the model then resolves offline', async () => {
    const cache = join(root, 'cache-ok');
    const { code, p } = await fetchCli(cache);
    assert.equal(code, 0, p.output());
    const repo = repoDir(cache);
    assert.equal(readFileSync(join(repo, 'refs', 'main'), 'utf8'), COMMIT);
    const snap = join(repo, 'snapshots', COMMIT);
    assert.deepEqual(readdirSync(snap).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    const weights = readFileSync(join(source, 'model.safetensors'));
    // LFS files are stored under their sha256, linked relatively from the snapshot.
    assert.ok(lstatSync(join(snap, 'model.safetensors')).isSymbolicLink());
    assert.equal(readlinkSync(join(snap, 'model.safetensors')), `../../blobs/${sha256(weights)}`);
    assert.ok(!readdirSync(join(repo, 'blobs')).some((f) => f.endsWith('.incomplete')));
    assert.deepEqual(
      p
        .events()
        .filter((e) => e.event === 'file_fetched')
        .map((e) => e.file)
        .sort(),
      ['config.json', 'model.safetensors', 'tokenizer.json'],
    );
    const progress = p.events().find((e) => e.event === 'fetch_progress' && e.file === 'model.safetensors');
    assert.equal(progress?.total, weights.length, 'progress names the file and its size');
    const m = await resolveModel(REPO, {}, 'main', {
      hubCache: cache,
      endpoint: 'http://0.0.0.0:9',
      offline: true,
    });
    assert.equal(m.dir, snap);
    assert.equal((await openCheckpoint(m.dir)).fingerprint, (await openCheckpoint(source)).fingerprint);
    // Staged again: nothing is downloaded twice.
    const gets = hub.requests.length;
    const again = await fetchCli(cache);
    assert.equal(again.code, 0, again.p.output());
    assert.ok(
      again.p
        .events()
        .filter((e) => e.event === 'file_fetched')
        .every((e) => e.downloaded === 0),
    );
    assert.equal(hub.requests.length, gets + 1, 'only the revision API is asked');
  });

  it('resumes an interrupted download with a Range request and never leaves a partial file at a final path', async () => {
    const cache = join(root, 'cache-resume');
    const weights = readFileSync(join(source, 'model.safetensors'));
    const half = Math.floor(weights.length / 2);
    hub.cutNext('model.safetensors', half);
    const first = await fetchCli(cache);
    assert.equal(first.code, 1, first.p.output());
    assert.match(
      first.p.output(),
      /model\.safetensors: GET http:\/\/127\.0\.0\.1:\d+\/mosaicml\/mpt-tiny\/resolve\/e+\/model\.safetensors failed/,
    );
    const blobs = join(repoDir(cache), 'blobs');
    const part = join(blobs, `${sha256(weights)}.incomplete`);
    // What reached the disk before the drop: at most what was sent (the client may lose the last
    // chunk it had not handed over), and the next run must continue from exactly there.
    const kept = statSync(part).size;
    assert.ok(kept > 0 && kept <= half, `${kept} bytes kept of ${half} sent`);
    assert.ok(!existsSync(join(blobs, sha256(weights))));
    assert.ok(!existsSync(join(repoDir(cache), 'snapshots', COMMIT, 'model.safetensors')));
    assert.ok(!existsSync(join(repoDir(cache), 'refs', 'main')), 'no ref to an incomplete snapshot');

    const from = hub.requests.length;
    const second = await fetchCli(cache);
    assert.equal(second.code, 0, second.p.output());
    const ranged = hub.requests.slice(from).filter((r) => r.url.endsWith('/model.safetensors'));
    assert.deepEqual(
      ranged.map((r) => r.headers.range),
      [`bytes=${kept}-`],
    );
    const done = second.p.events().find((e) => e.event === 'file_fetched' && e.file === 'model.safetensors');
    assert.equal(done?.resumed_from, kept);
    assert.equal(done?.downloaded, weights.length - kept);
    assert.deepEqual(readFileSync(join(blobs, sha256(weights))), weights);
    assert.ok(!existsSync(part));
  });

  for (const [file, what] of [
    ['model.safetensors', /sha256 [0-9a-f]{64}, expected [0-9a-f]{64}/],
    ['config.json', /git blob sha1 [0-9a-f]{40}, expected [0-9a-f]{40}/],
  ] as const) {
    it(`refuses a corrupted ${file} (${file.endsWith('.json') ? 'git blob sha1' : 'LFS sha256'}), naming the file and URL, and keeps nothing of it`, async () => {
      const cache = join(root, `cache-corrupt-${file}`);
      const real = readFileSync(join(source, file));
      const bad = Buffer.from(real);
      bad[bad.length >> 1] = (bad[bad.length >> 1] as number) ^ 0x01;
      hub.corrupt(file, bad);
      try {
        const { code, p } = await fetchCli(cache);
        assert.equal(code, 1, p.output());
        assert.match(
          p.output(),
          new RegExp(
            `${file.replace('.', '\\.')}: refused the download from http://[^ ]+/${file.replace('.', '\\.')}`,
          ),
        );
        assert.match(p.output(), what);
        const blobs = readdirSync(join(repoDir(cache), 'blobs'));
        assert.ok(!blobs.some((b) => b.endsWith('.incomplete')), blobs.join(','));
        assert.ok(!existsSync(join(repoDir(cache), 'snapshots', COMMIT, file)));
      } finally {
        hub.corrupt(file, null);
      }
    });
  }
});

describe('lora-mpt fetch with HF_HUB_OFFLINE', () => {
  it('downloads nothing: exit 0 for a complete staged snapshot, exit 2 naming what is missing otherwise', async () => {
    const cache = join(root, 'cache-offline');
    assert.equal((await fetchCli(cache)).code, 0);
    const gets = hub.requests.length;
    const offline = (c: string) =>
      startLoraMpt('fetch', ['fetch', '--repo_id', REPO, '--endpoint', hub.endpoint, '--cache_dir', c], {
        HF_HUB_OFFLINE: '1',
      });
    const ok = offline(cache);
    assert.equal(await ok.exited(), 0, ok.output());
    rmSync(join(repoDir(cache), 'snapshots', COMMIT, 'model.safetensors'));
    const incomplete = offline(cache);
    assert.equal(await incomplete.exited(), 2);
    assert.match(incomplete.output(), /is incomplete[\s\S]*model\.safetensors or pytorch_model\.bin/);
    const absent = offline(join(root, 'cache-offline-empty'));
    assert.equal(await absent.exited(), 2);
    assert.match(absent.output(), /HF_HUB_OFFLINE is set/);
    assert.equal(hub.requests.length, gets, 'offline: no request reached the Hub');
  });
});

describe('lora-mpt fetch from a URL list', () => {
  it('stages the listed files, checks a given sha256, and refuses a wrong one', async () => {
    const cache = join(root, 'cache-list');
    const weights = readFileSync(join(source, 'model.safetensors'));
    const base = `${hub.endpoint}/${REPO}/resolve/${COMMIT}`;
    const list = join(root, 'files.txt');
    writeFileSync(
      list,
      `# the tiny model\n${base}/config.json\n${base}/model.safetensors ${sha256(weights)}\n${base}/tokenizer.json tokenizer.json\n`,
    );
    const { code, p } = await fetchCli(cache, '--url_list', list);
    assert.equal(code, 0, p.output());
    const m = await resolveModel(REPO, {}, 'main', {
      hubCache: cache,
      endpoint: 'http://0.0.0.0:9',
      offline: true,
    });
    assert.equal((await openCheckpoint(m.dir)).fingerprint, (await openCheckpoint(source)).fingerprint);
    assert.ok(existsSync(join(m.dir, 'tokenizer.json')));

    const wrong = join(root, 'wrong.txt');
    writeFileSync(wrong, `${base}/config.json\n${base}/model.safetensors ${'0'.repeat(64)}\n`);
    const bad = await fetchCli(join(root, 'cache-list-bad'), '--url_list', wrong);
    assert.equal(bad.code, 1);
    assert.match(bad.p.output(), /model\.safetensors: refused the download .* expected 0{64}/);
  });

  it('names the line of a malformed list', async () => {
    const list = join(root, 'bad-list.txt');
    writeFileSync(list, `${hub.endpoint}/a/config.json\nnot-a-url\n`);
    const { code, p } = await fetchCli(join(root, 'cache-bad-list'), '--url_list', list);
    assert.equal(code, 1);
    assert.match(p.output(), /bad-list\.txt line 2: "not-a-url" is not a URL/);
  });

  it('exits 2 naming what is missing when the files are not a checkpoint', async () => {
    const list = join(root, 'no-weights.txt');
    writeFileSync(list, `${hub.endpoint}/${REPO}/resolve/${COMMIT}/tokenizer.json\n`);
    const { code, p } = await fetchCli(join(root, 'cache-no-weights'), '--url_list', list);
    assert.equal(code, 2, p.output());
    assert.match(p.output(), /lacks config\.json, model\.safetensors or pytorch_model\.bin/);
  });
});

// --data_path loading: JSON array, JSON lines, parquet (written by pyarrow), directories, Hugging Face
// ids from the cache or fetched from a hub (a real HTTP server on loopback), and bad-row errors.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadDataset } from '../../src/data/dataset.ts';
import { type HubOptions, hubOptionsFromEnv, resolveTokenizerJson } from '../../src/hub/hf-cache.ts';
import { FIXTURES } from './paths.ts';

/** Folders the tests made, removed when the file's tests end. */
const made: string[] = [];
const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-data-'));
  made.push(dir);
  return dir;
};
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
const row = (i: number) => ({ instruction: `do ${i}`, input: i % 2 ? `in ${i}` : '', output: `out ${i}` });
const strict = { skipBadRows: false } as const;

describe('loading --data_path', () => {
  it('reads a JSON array, keeping file and row of each record', async () => {
    const dir = tmp();
    const file = join(dir, 'a.json');
    writeFileSync(file, JSON.stringify([row(0), row(1), { ...row(2), extra: 5 }]));
    const d = await loadDataset(file, strict);
    assert.deepEqual(
      d.records.map((r) => [r.instruction, r.input, r.output, r.file, r.row]),
      [
        ['do 0', '', 'out 0', file, 0],
        ['do 1', 'in 1', 'out 1', file, 1],
        ['do 2', '', 'out 2', file, 2],
      ],
    );
  });

  it('reads .jsonl and a .json that holds JSON lines, skipping blank lines', async () => {
    const dir = tmp();
    const lines = `${JSON.stringify(row(0))}\r\n\n${JSON.stringify(row(1))}\n`;
    writeFileSync(join(dir, 'a.jsonl'), lines);
    writeFileSync(join(dir, 'b.json'), lines);
    for (const f of ['a.jsonl', 'b.json'])
      assert.deepEqual(
        (await loadDataset(join(dir, f), strict)).records.map((r) => r.output),
        ['out 0', 'out 1'],
      );
  });

  it('reads parquet written by pyarrow (snappy, non-ASCII)', async () => {
    const d = await loadDataset(join(FIXTURES, 'alpaca-tiny.parquet'), strict);
    assert.equal(d.records.length, 4);
    assert.deepEqual(
      { ...d.records[3], file: '' },
      { instruction: 'Écris un haïku.', input: '', output: 'Neige sur le toit 🌨', file: '', row: 3 },
    );
    assert.equal(d.records[1]!.input, 'Good morning');
  });

  it('reads a directory: data files in path order, other files listed as ignored', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data', 'b.jsonl'), `${JSON.stringify(row(1))}\n`);
    writeFileSync(join(dir, 'a.json'), JSON.stringify([row(0)]));
    writeFileSync(join(dir, 'README.md'), '# card');
    const d = await loadDataset(dir, strict);
    assert.deepEqual(
      d.records.map((r) => r.output),
      ['out 0', 'out 1'],
    );
    assert.deepEqual(d.ignoredFiles, ['README.md']);
  });

  it('names file, row and field for a missing field, a number, and a bad JSON line', async () => {
    const dir = tmp();
    const a = join(dir, 'a.json');
    writeFileSync(a, JSON.stringify([row(0), { instruction: 'x', input: '' }]));
    await assert.rejects(loadDataset(a, strict), {
      message: `${a} row 1: "output" is missing (fix the row, or pass --skip_bad_rows to skip and count it)`,
    });
    writeFileSync(a, JSON.stringify([{ instruction: 'x', input: 3, output: 'y' }]));
    await assert.rejects(loadDataset(a, strict), {
      message: new RegExp(`^${a} row 0: "input" is not a string \\(got number\\)`),
    });
    const b = join(dir, 'b.jsonl');
    writeFileSync(b, `${JSON.stringify(row(0))}\n{"instruction": "x", \n`);
    await assert.rejects(loadDataset(b, strict), {
      message: new RegExp(`^${b} line 2 \\(row 1\\): not valid JSON`),
    });
    const bad = join(FIXTURES, 'alpaca-bad.parquet');
    await assert.rejects(loadDataset(bad, strict), {
      message: new RegExp(`^${bad} row 0: "output" is not a string \\(got number\\)`),
    });
  });

  it('skips and counts bad rows with skipBadRows, keeping the good ones', async () => {
    const dir = tmp();
    const b = join(dir, 'b.jsonl');
    writeFileSync(
      b,
      [
        JSON.stringify(row(0)),
        '{oops',
        JSON.stringify({ ...row(2), output: null }),
        JSON.stringify(row(3)),
      ].join('\n'),
    );
    const d = await loadDataset(b, { skipBadRows: true });
    assert.deepEqual(
      d.records.map((r) => r.output),
      ['out 0', 'out 3'],
    );
    assert.deepEqual(
      d.skipped.map((s) => s.row),
      [1, 2],
    );
    assert.match(d.skipped[0]!.reason, new RegExp(`^${b} line 2 \\(row 1\\): not valid JSON \\(`));
    assert.equal(d.skipped[1]!.reason, `${b} line 3 (row 2): "output" is not a string (got null)`);
  });

  it('rejects a path that is neither a file nor a hub id', async () => {
    await assert.rejects(
      loadDataset('/nope/x.json', strict),
      /no such file or directory, and not a Hugging Face/,
    );
  });
});

describe('Hugging Face hub cache', () => {
  const hubWith = (hubCache: string, extra: Partial<HubOptions> = {}): HubOptions => ({
    hubCache,
    endpoint: 'http://127.0.0.1:9',
    offline: true,
    ...extra,
  });

  it('resolves a dataset id through refs/main to its snapshot (symlinked blobs, as huggingface_hub)', async () => {
    const hub = tmp();
    const repo = join(hub, 'datasets--yahma--alpaca-cleaned');
    const commit = 'a'.repeat(40);
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(join(repo, 'refs'));
    mkdirSync(join(repo, 'snapshots', commit), { recursive: true });
    writeFileSync(join(repo, 'refs', 'main'), commit);
    writeFileSync(join(repo, 'blobs', 'f00'), JSON.stringify([row(0), row(1)]));
    symlinkSync(join(repo, 'blobs', 'f00'), join(repo, 'snapshots', commit, 'alpaca_data_cleaned.json'));
    const d = await loadDataset('yahma/alpaca-cleaned', { skipBadRows: false, hub: hubWith(hub) });
    assert.equal(d.records.length, 2);
  });

  it('offline and not cached: says what to download and where', async () => {
    const hub = tmp();
    await assert.rejects(
      loadDataset('yahma/alpaca-cleaned', { skipBadRows: false, hub: hubWith(hub) }),
      (err: Error) =>
        err.message.includes(join(hub, 'datasets--yahma--alpaca-cleaned')) &&
        err.message.includes('huggingface-cli download --repo-type dataset yahma/alpaca-cleaned'),
    );
  });

  it('downloads a dataset from the hub into the cache, then finds it there offline', async () => {
    const sha = 'b'.repeat(40);
    const body = JSON.stringify([row(0), row(1), row(2)]);
    const server = createServer((req, res) => {
      // The Hub's API takes ?blobs=true for sizes and checksums (this stand-in has none).
      if (req.url?.split('?')[0] === '/api/datasets/yahma/alpaca-cleaned/revision/main') {
        res.end(
          JSON.stringify({
            sha,
            siblings: [{ rfilename: 'README.md' }, { rfilename: 'alpaca_data_cleaned.json' }],
          }),
        );
      } else if (req.url === `/datasets/yahma/alpaca-cleaned/resolve/${sha}/alpaca_data_cleaned.json`)
        res.end(body);
      else res.writeHead(404).end();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const hub = tmp();
    try {
      const d = await loadDataset('yahma/alpaca-cleaned', {
        skipBadRows: false,
        hub: hubWith(hub, { endpoint, offline: false }),
      });
      assert.equal(d.records.length, 3);
    } finally {
      server.close();
    }
    const repo = join(hub, 'datasets--yahma--alpaca-cleaned');
    assert.equal(readFileSync(join(repo, 'refs', 'main'), 'utf8'), sha);
    const again = await loadDataset('yahma/alpaca-cleaned', { skipBadRows: false, hub: hubWith(hub) });
    assert.equal(again.records[2]!.file, join(repo, 'snapshots', sha, 'alpaca_data_cleaned.json'));
  });

  it('reads the cache location from HF_HUB_CACHE, HF_HOME or the home folder', () => {
    assert.equal(hubOptionsFromEnv({}, '/home/u').hubCache, '/home/u/.cache/huggingface/hub');
    assert.equal(hubOptionsFromEnv({ HF_HOME: '/hf' }, '/home/u').hubCache, '/hf/hub');
    assert.equal(hubOptionsFromEnv({ HF_HUB_CACHE: '/c', HF_HOME: '/hf' }, '/home/u').hubCache, '/c');
    assert.equal(hubOptionsFromEnv({ HF_HUB_OFFLINE: '1' }, '/h').offline, true);
  });

  it('finds tokenizer.json in a model directory or a cached model snapshot', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'tokenizer.json'), '{}');
    assert.equal(resolveTokenizerJson(dir, '/none'), join(dir, 'tokenizer.json'));
    const hub = tmp();
    const snap = join(hub, 'models--mosaicml--mpt-7b', 'snapshots', 'c'.repeat(40));
    mkdirSync(snap, { recursive: true });
    writeFileSync(join(snap, 'tokenizer.json'), '{}');
    assert.equal(resolveTokenizerJson('mosaicml/mpt-7b', hub), join(snap, 'tokenizer.json'));
    assert.throws(
      () => resolveTokenizerJson('mosaicml/mpt-30b', hub),
      /models--mosaicml--mpt-30b\/snapshots/,
    );
  });
});

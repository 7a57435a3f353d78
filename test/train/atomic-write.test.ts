import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { removeStaleTemporaries, writeDirAtomic, writeFileAtomic } from '../../src/train/atomic-write.ts';
import { listCheckpoints, pruneCheckpoints } from '../../src/train/checkpoint-dirs.ts';

const root = mkdtempSync(join(tmpdir(), 'lora-mpt-atomic-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('atomic writes', () => {
  it('replaces a file whole', async () => {
    const p = join(root, 'a.json');
    await writeFileAtomic(p, '{"v":1}');
    await writeFileAtomic(p, '{"v":2}');
    assert.equal(readFileSync(p, 'utf8'), '{"v":2}');
    assert.deepEqual(readdirSync(root), ['a.json']);
  });

  it('leaves the old directory in place and no temporary behind when filling fails', async () => {
    const dir = join(root, 'checkpoint-5');
    await writeDirAtomic(dir, async (tmp) => writeFileSync(join(tmp, 'x'), 'old'));
    await assert.rejects(
      writeDirAtomic(dir, async (tmp) => {
        writeFileSync(join(tmp, 'x'), 'half');
        throw new Error('disk full');
      }),
      /disk full/,
    );
    assert.equal(readFileSync(join(dir, 'x'), 'utf8'), 'old');
    assert.deepEqual(readdirSync(root).sort(), ['a.json', 'checkpoint-5']);
  });

  it('replaces a whole directory, dropping files the new one lacks', async () => {
    const dir = join(root, 'checkpoint-5');
    await writeDirAtomic(dir, async (tmp) => writeFileSync(join(tmp, 'y'), 'new'));
    assert.deepEqual(readdirSync(dir), ['y']);
  });

  it('finds and removes temporaries a crash left behind', async () => {
    const stale = join(root, '.checkpoint-9.tmp-123-0badc0de');
    writeFileSync(stale, 'partial');
    assert.deepEqual(await removeStaleTemporaries(root), ['.checkpoint-9.tmp-123-0badc0de']);
    assert.ok(!readdirSync(root).includes('.checkpoint-9.tmp-123-0badc0de'));
  });
});

describe('checkpoint rotation', () => {
  it('keeps the newest save_total_limit checkpoints and never the best one', async () => {
    const out = mkdtempSync(join(root, 'out-'));
    for (const s of [10, 20, 30, 40, 50]) await writeDirAtomic(join(out, `checkpoint-${s}`), async () => {});
    const deleted = await pruneCheckpoints(out, 3, join(out, 'checkpoint-10'));
    assert.deepEqual(
      deleted.map((p) => p.slice(out.length + 1)),
      ['checkpoint-20', 'checkpoint-30'],
    );
    assert.deepEqual(
      (await listCheckpoints(out)).map((c) => c.step),
      [10, 40, 50],
    );
  });
});

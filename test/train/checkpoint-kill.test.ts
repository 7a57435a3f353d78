import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/data/rng.ts';
import { removeStaleTemporaries } from '../../src/train/atomic-write.ts';
import { listCheckpoints } from '../../src/train/checkpoint-dirs.ts';
import { loadTrainingCheckpoint } from '../../src/train/training-checkpoint.ts';
import { bigLayout } from '../support/big-adapter.ts';

const WRITER = fileURLToPath(new URL('../support/checkpoint-writer.ts', import.meta.url));
const KILLS = 100;
const BLOCKS = 2; // 2M adapter values: 25 MB per checkpoint (weights + two AdamW moments)

/** Uniform [0, 1) draws from the project's seeded generator: the same on every run. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.nextU32() / 2 ** 32;
}

/** Starts the writer, waits until it writes, SIGKILLs it after `delayMs`; resolves with what it said. */
function writeAndKill(dir: string, delayMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, String(BLOCKS)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let armed = false;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (!armed && out.includes('ready\n')) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      signal === 'SIGKILL' ? resolve(out) : reject(new Error(`writer exited ${code}:\n${out}`)),
    );
  });
}

// SIGKILL while checkpoints of a large adapter are written (the product's saveTrainingCheckpoint
// and pruning), at seeded random moments: in the tensor writes, the fsyncs, the renames and the
// pruning. After every kill (and the restart's cleanup) every checkpoint on disk loads, the newest
// with the contents of its step.
describe('checkpoints under SIGKILL', () => {
  it(`leaves a loadable newest checkpoint after each of ${KILLS} kills`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-kill-'));
    const layout = bigLayout(BLOCKS);
    const random = rng(12);
    const seen = { temporaries: 0, olderUnreadable: 0, saves: 0 };
    try {
      for (let i = 0; i < KILLS; i++) {
        // A checkpoint takes ~50 ms here: 0-200 ms spans a few whole write cycles.
        const said = await writeAndKill(dir, Math.floor(random() * 200));
        seen.saves += (said.match(/^saved /gm) ?? []).length;
        if (readdirSync(dir).some((n) => n.startsWith('.'))) seen.temporaries++;
        await removeStaleTemporaries(dir); // what a restarted run does first
        const all = await listCheckpoints(dir);
        assert.ok(all.length > 0 || seen.saves === 0, `kill ${i}: no checkpoint left`);
        if (all.length === 0) continue;
        const newest = all.at(-1)!;
        const ck = await loadTrainingCheckpoint(newest.path, layout).catch((err: Error) =>
          assert.fail(`kill ${i}: the newest checkpoint ${newest.path} does not load: ${err.message}`),
        );
        assert.equal(ck.state.global_step, newest.step);
        assert.equal(ck.params[0], newest.step, `kill ${i}: contents of step ${newest.step}`);
        assert.equal(ck.params.at(-1), newest.step);
        for (const older of all.slice(0, -1)) {
          await loadTrainingCheckpoint(older.path, layout).catch(() => seen.olderUnreadable++);
        }
      }
      t.diagnostic(
        `${KILLS} kills over ${seen.saves} saves; ${seen.temporaries} left an unfinished write or delete behind (killed writing, fsyncing, renaming or pruning), cleared on restart`,
      );
      // Pruning renames a checkpoint away before deleting it: no half-deleted one keeps its name.
      assert.equal(seen.olderUnreadable, 0, 'every checkpoint on disk loads, not only the newest');
      assert.ok(seen.saves > KILLS / 4, 'the writer completed checkpoints between kills');
      assert.ok(seen.temporaries > 0, 'some kills landed inside a write');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

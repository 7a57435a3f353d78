// Writes that a crash cannot leave half-done: content goes to a temporary name beside the target,
// is fsynced, then renamed over it (rename is atomic within a file system), and the parent
// directory is fsynced so the rename itself survives a power cut.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function fsyncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) await fsyncTree(p);
    else await fsyncPath(p);
  }
  await fsyncPath(dir);
}

const tempName = (target: string, tag: string) =>
  join(dirname(target), `.${basename(target)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Writes one file atomically. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempName(path, 'tmp');
  try {
    await writeFile(tmp, data);
    await fsyncPath(tmp);
    await rename(tmp, path);
    await fsyncPath(dirname(path));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Builds a whole directory atomically: `fill` writes into a fresh temporary directory, which then
 * replaces `path` in one rename. Readers see the old directory or the new one, never a mix.
 */
export async function writeDirAtomic(path: string, fill: (dir: string) => Promise<void>): Promise<void> {
  const tmp = tempName(path, 'tmp');
  await mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
    await fsyncTree(tmp);
    if (await exists(path)) {
      const old = tempName(path, 'old');
      await rename(path, old);
      await rename(tmp, path);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, path);
    }
    await fsyncPath(dirname(path));
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Removes a directory so that a crash never leaves half of it under its name: renamed to a
 * temporary name first (atomic), then deleted. A crash in between leaves a temporary, which
 * removeStaleTemporaries clears.
 */
export async function removeDirAtomic(path: string): Promise<void> {
  const old = tempName(path, 'old');
  await rename(path, old);
  await fsyncPath(dirname(path));
  await rm(old, { recursive: true, force: true });
}

/** Leftovers of writes interrupted by a crash (temporary names this module creates). */
export async function removeStaleTemporaries(dir: string): Promise<string[]> {
  const stale = (await readdir(dir)).filter((n) => /^\..+\.(tmp|old)-\d+-[0-9a-f]{8}$/.test(n));
  for (const name of stale) await rm(join(dir, name), { recursive: true, force: true });
  return stale;
}

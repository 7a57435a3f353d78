// `OUTPUT_DIR/checkpoint-<step>/` bookkeeping: which checkpoints exist, the newest one to resume
// from, and pruning to `save_total_limit` the way the HF Trainer does (the best one is never pruned).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { removeDirAtomic } from './atomic-write.ts';

export const checkpointName = (step: number) => `checkpoint-${step}`;

export interface CheckpointDir {
  readonly step: number;
  readonly path: string;
}

/** Completed checkpoints in `outputDir`, oldest first. Temporaries of interrupted writes are not listed. */
export async function listCheckpoints(outputDir: string): Promise<CheckpointDir[]> {
  let names: string[];
  try {
    names = await readdir(outputDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(outputDir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Deletes the oldest checkpoints until at most `limit` remain (limit <= 0 keeps all). The checkpoint
 * at `keepPath` (the best so far) survives even when it is among the oldest. Returns what was deleted.
 */
export async function pruneCheckpoints(
  outputDir: string,
  limit: number,
  keepPath?: string,
): Promise<string[]> {
  if (limit <= 0) return [];
  const all = await listCheckpoints(outputDir);
  const excess = all.length - limit;
  if (excess <= 0) return [];
  const victims = all.filter((c) => c.path !== keepPath).slice(0, excess);
  // Renamed away before deletion: a crash mid-delete never leaves half a checkpoint under its name.
  for (const v of victims) await removeDirAtomic(v.path);
  return victims.map((v) => v.path);
}

// A fetch plan made real in the Hugging Face cache, in the layout huggingface_hub writes and
// resolveModel reads: <repo>/blobs/<etag>, <repo>/snapshots/<commit>/<path> a relative symlink to
// its blob, and <repo>/refs/<revision> holding the commit. Links and the ref are written to a
// temporary name and renamed, so a reader sees a file whole or not at all, and the ref appears last.
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { type BlobProgress, type FetchedBlob, fetchBlob } from './blob-fetch.ts';
import type { FetchPlan } from './fetch-plan.ts';
import { type RepoKind, repoFolder } from './hf-cache.ts';

export interface StagedSnapshot {
  readonly snapshot: string;
  readonly commit: string;
  /** The ref written (refs/<revision>), or null when the revision was the commit itself. */
  readonly ref: string | null;
  readonly files: readonly (FetchedBlob & { readonly path: string })[];
}

export async function stageSnapshot(
  plan: FetchPlan,
  o: {
    readonly hubCache: string;
    readonly kind: RepoKind;
    readonly repoId: string;
    readonly revision: string;
    readonly token?: string;
    readonly onProgress?: (p: BlobProgress) => void;
    readonly onFile?: (f: FetchedBlob & { readonly path: string }) => void;
  },
): Promise<StagedSnapshot> {
  const repo = repoFolder(o.hubCache, o.kind, o.repoId);
  const blobs = join(repo, 'blobs');
  const snapshot = join(repo, 'snapshots', plan.commit);
  await mkdir(blobs, { recursive: true });
  const files: (FetchedBlob & { readonly path: string })[] = [];
  for (const item of plan.items) {
    const blob = await fetchBlob(item, blobs, {
      ...(o.token ? { token: o.token } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    const link = join(snapshot, item.path);
    await mkdir(dirname(link), { recursive: true });
    const tmp = `${link}.${process.pid}.tmp`;
    await rm(tmp, { force: true });
    await symlink(relative(dirname(link), join(blobs, blob.etag)), tmp);
    await rename(tmp, link);
    const done = { ...blob, path: item.path };
    files.push(done);
    o.onFile?.(done);
  }
  let ref: string | null = null;
  if (o.revision !== plan.commit) {
    ref = join(repo, 'refs', o.revision);
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(`${ref}.${process.pid}.tmp`, plan.commit);
    await rename(`${ref}.${process.pid}.tmp`, ref);
  }
  return { snapshot, commit: plan.commit, ref, files };
}

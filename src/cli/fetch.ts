// `lora-mpt fetch`: stages a model (or dataset) into the Hugging Face cache before training, as
// huggingface_hub lays it out, so `--base_model org/name` resolves offline afterwards. Resumable
// (partial blobs continue with HTTP Range), checked (sha256 / git blob sha1 and sizes from the
// Hub, or sha256 from a URL list), and it reports progress. The chart runs it before the coordinator.
import { homedir } from 'node:os';
import type { Events } from '../events/events.ts';
import { type FetchPlan, hubPlan, type RepoType, urlListPlan } from '../hub/fetch-plan.ts';
import { cachedSnapshot, hubOptionsFromEnv, isHubId } from '../hub/hf-cache.ts';
import { ModelNotFoundError, missingWeightFiles, resolveModel } from '../hub/models.ts';
import { stageSnapshot } from '../hub/stage-snapshot.ts';
import { type Command, flagCommand } from './command.ts';
import { type FlagSpecs, UsageError } from './flags.ts';
import { eventsFromFlags, logFlags } from './log-flags.ts';

/** Progress is reported at most this often per file (and always when a file completes). */
const PROGRESS_EVERY_MS = 5000;

export const fetchFlags = {
  repo_id: {
    kind: 'string',
    help: 'The Hub repo to stage, org/name (e.g. mosaicml/mpt-7b-instruct). Required; with --url_list it only names the cache folder (models--org--name).',
  },
  revision: {
    kind: 'string',
    default: 'main',
    help: 'Branch, tag or 40-hex commit of the repo. A branch or tag is written to refs/<revision>, so --base_model org/name finds the snapshot.',
  },
  repo_type: { kind: 'string', default: 'model', help: 'model or dataset.' },
  url_list: {
    kind: 'string',
    help: 'Instead of asking the Hub: a file with one line per file, "URL [sha256] [name]" (# comments). The snapshot is named by the sha1 of the list; a sha256 given is checked, else the size the server sends.',
  },
  endpoint: {
    kind: 'string',
    help: 'Base URL of the Hub or a mirror (as HF_ENDPOINT). Default: HF_ENDPOINT, else https://huggingface.co.',
  },
  cache_dir: {
    kind: 'string',
    help: 'The hub cache to stage into. Default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (the chart: <volume>/huggingface/hub).',
  },
  all_files: {
    kind: 'bool',
    default: false,
    help: "Every file of the repo, not only what lora-mpt reads (config, tokenizer files, one weight format; a dataset's .json/.jsonl/.parquet).",
  },
  ...logFlags,
} as const satisfies FlagSpecs;

const DESCRIPTION =
  'Downloads a Hub repo at a revision (or the files of a URL list) into the Hugging Face cache layout\n' +
  '(<cache>/models--org--name/{blobs,snapshots/<commit>,refs/<revision>}). An interrupted run resumes\n' +
  'its partial files (blobs/*.incomplete); files are checked against the sha256 (LFS) or git blob sha1\n' +
  'and size the Hub lists, and a mismatch is refused and deleted. Exit 2: the repo or list lacks what\n' +
  'an MPT checkpoint needs (config.json, weights). With HF_HUB_OFFLINE=1 nothing is downloaded: exit 0\n' +
  'when the cache holds the revision complete, else exit 2 naming what is missing.\n' +
  'Environment: HF_TOKEN, HF_ENDPOINT, HF_HUB_CACHE, HF_HOME, HF_HUB_OFFLINE.';

export const fetchCommand: Command = flagCommand({
  name: 'fetch',
  summary: 'Stage a Hub model or dataset (or a URL list) into the HF cache: resumable, checksums checked',
  usage: 'lora-mpt fetch --repo_id org/name [--revision main] [--url_list FILE] [--cache_dir DIR]',
  description: DESCRIPTION,
  flags: fetchFlags,
  async run(f) {
    if (f.repo_id === undefined) throw new UsageError('--repo_id is required (org/name)');
    if (!isHubId(f.repo_id)) throw new UsageError(`--repo_id ${f.repo_id}: expected org/name`);
    if (f.repo_type !== 'model' && f.repo_type !== 'dataset') {
      throw new UsageError(`--repo_type ${f.repo_type}: expected model or dataset`);
    }
    if (f.revision === '' || f.revision.split('/').some((p) => p === '' || p === '..' || p === '.')) {
      throw new UsageError(`--revision "${f.revision}": expected a branch, tag or commit`);
    }
    const env = hubOptionsFromEnv(process.env, homedir());
    const hubCache = f.cache_dir ?? env.hubCache;
    const endpoint = (f.endpoint ?? env.endpoint).replace(/\/+$/, '');
    const repoType: RepoType = f.repo_type;
    const kind = repoType === 'dataset' ? 'datasets' : 'models';
    const events = eventsFromFlags(f, { label: 'fetch', bindings: { repo: f.repo_id } });
    if (env.offline) return checkOffline(f.repo_id, repoType, f.revision, hubCache, events);

    let plan: FetchPlan;
    try {
      plan =
        f.url_list !== undefined
          ? await urlListPlan(f.url_list)
          : await hubPlan({
              endpoint,
              repoId: f.repo_id,
              repoType,
              revision: f.revision,
              allFiles: f.all_files,
              ...(env.token ? { token: env.token } : {}),
            });
    } catch (err) {
      // A pod restarted with the network gone still starts from what an earlier run staged.
      const cached = cachedSnapshot(hubCache, kind, f.repo_id);
      if (f.url_list === undefined && cached !== undefined && f.revision === 'main') {
        events.warn('warning', `${(err as Error).message}; using the snapshot already staged at ${cached}`);
        return 0;
      }
      throw err;
    }
    const bytes = plan.items.reduce((s, i) => s + (i.size ?? 0), 0);
    events.info(
      'fetch_started',
      `${f.repo_id}@${f.revision} = ${plan.commit}: ${plan.items.length} file(s)${bytes ? `, ${(bytes / 1e9).toFixed(2)} GB` : ''} into ${hubCache}`,
      { commit: plan.commit, files: plan.items.length, bytes },
    );
    const last = new Map<string, number>();
    const staged = await stageSnapshot(plan, {
      hubCache,
      kind,
      repoId: f.repo_id,
      revision: f.revision,
      ...(env.token ? { token: env.token } : {}),
      onProgress: (p) => {
        const now = Date.now();
        if (now - (last.get(p.path) ?? 0) < PROGRESS_EVERY_MS) return;
        last.set(p.path, now);
        const of = p.total
          ? ` of ${(p.total / 1e6).toFixed(1)} MB (${((100 * p.done) / p.total).toFixed(1)}%)`
          : ' MB';
        events.info('fetch_progress', `${p.path}: ${(p.done / 1e6).toFixed(1)}${of}`, {
          file: p.path,
          done: p.done,
          total: p.total,
        });
      },
      onFile: (b) => {
        const how =
          b.downloaded === 0
            ? 'already staged'
            : b.resumedFrom > 0
              ? `resumed at byte ${b.resumedFrom}`
              : 'downloaded';
        events.info('file_fetched', `${b.path}: ${b.size} bytes, checked (${how})`, {
          file: b.path,
          size: b.size,
          downloaded: b.downloaded,
          resumed_from: b.resumedFrom,
          blob: b.etag,
        });
      },
    });
    if (repoType === 'model') {
      const missing = plan.items.some((i) => i.path === 'config.json') ? [] : ['config.json'];
      missing.push(...(await missingWeightFiles(staged.snapshot)));
      if (missing.length > 0) {
        throw new ModelNotFoundError(
          `${f.repo_id}@${f.revision}: the staged snapshot ${staged.snapshot} lacks ${missing.join(', ')}: not a checkpoint lora-mpt can train`,
        );
      }
    }
    events.info('fetch_finished', `${f.repo_id} staged in ${staged.snapshot}`, {
      snapshot: staged.snapshot,
      commit: staged.commit,
      ref: staged.ref,
    });
    return 0;
  },
});

/** HF_HUB_OFFLINE: no network; the staged snapshot must be there already (exit 2 naming what is not). */
async function checkOffline(
  repoId: string,
  repoType: RepoType,
  revision: string,
  hubCache: string,
  events: Events,
): Promise<number> {
  if (repoType === 'model') {
    const m = await resolveModel(repoId, {}, revision, { hubCache, endpoint: '', offline: true });
    events.info('fetch_finished', `HF_HUB_OFFLINE: ${repoId}@${revision} is staged complete in ${m.dir}`, {
      snapshot: m.dir,
      commit: m.commit,
      ref: null,
    });
    return 0;
  }
  const snap = cachedSnapshot(hubCache, 'datasets', repoId);
  if (snap === undefined) {
    throw new ModelNotFoundError(`HF_HUB_OFFLINE is set and dataset ${repoId} is not in ${hubCache}`);
  }
  events.info('fetch_finished', `HF_HUB_OFFLINE: dataset ${repoId} is staged in ${snap}`, {
    snapshot: snap,
    commit: null,
    ref: null,
  });
  return 0;
}

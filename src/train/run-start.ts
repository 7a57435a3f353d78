// How a run starts and ends, the same for `finetune` and the coordinator: the adapter replica to
// begin from (an exact checkpoint checked against this run's data plan, an adapter's weights only,
// or PEFT's initialisation), and the adapter written as the result (the best checkpoint's, when an
// evaluation picked one, else the last weights).
import type { LoraTarget } from '../checkpoint/lora-targets.ts';
import { initLoraWeights } from '../checkpoint/lora-targets.ts';
import { type LoraConfig, readPeftAdapter, writePeftAdapter } from '../checkpoint/peft-adapter.ts';
import type { CheckpointKeeper } from './checkpoint-keeper.ts';
import { writeFinalAdapter } from './final-adapter.ts';
import { flatten, type ParamLayout } from './param-layout.ts';
import { AdapterReplica } from './replica.ts';
import { adapterTensors, loadTrainingCheckpoint, type TrainerState } from './training-checkpoint.ts';

export type StartFrom =
  | { readonly kind: 'exact'; readonly dir: string }
  /** The first of `dirs` (newest first) that loads; unreadable ones are skipped (onSkipped says why). */
  | { readonly kind: 'newest'; readonly dirs: readonly string[] }
  | { readonly kind: 'weights'; readonly dir: string }
  | { readonly kind: 'init' };

export interface StartedReplica {
  readonly replica: AdapterReplica;
  /** The trainer state of the checkpoint resumed from (exact resume only). */
  readonly resumed?: TrainerState;
  /** The checkpoint resumed from (exact and newest). */
  readonly dir?: string;
}

/** A checkpoint written for other data or flags: not a damaged file, so never skipped. */
export class PlanMismatchError extends Error {
  override name = 'PlanMismatchError';
}

export async function startReplica(o: {
  readonly from: StartFrom;
  readonly layout: ParamLayout;
  readonly targets: readonly LoraTarget[];
  readonly r: number;
  readonly seed: number;
  readonly planFingerprint: string;
  /** A checkpoint of `newest` that could not be read, and why. */
  readonly onSkipped?: (dir: string, why: string) => void;
}): Promise<StartedReplica> {
  const { layout } = o;
  if (o.from.kind === 'newest') {
    const why: string[] = [];
    for (const dir of o.from.dirs) {
      try {
        return await startReplica({ ...o, from: { kind: 'exact', dir } });
      } catch (err) {
        if (err instanceof PlanMismatchError) throw err;
        why.push((err as Error).message);
        o.onSkipped?.(dir, (err as Error).message);
      }
    }
    throw new Error(`no checkpoint could be read: ${why.join('; ')}; move them aside to start over`);
  }
  if (o.from.kind === 'exact') {
    const ck = await loadTrainingCheckpoint(o.from.dir, layout);
    if (ck.state.lora_mpt.plan_fingerprint !== o.planFingerprint) {
      throw new PlanMismatchError(
        `${o.from.dir} was written for other data or flags (plan ${ck.state.lora_mpt.plan_fingerprint.slice(0, 12)}, now ${o.planFingerprint.slice(0, 12)}); resume with the run's original --data_path, batch sizes, epochs, seed and cutoff, or use another --output_dir`,
      );
    }
    const replica = new AdapterReplica(layout, ck.params);
    replica.restore({ ...ck, step: ck.state.lora_mpt.optimizer_steps });
    return { replica, resumed: ck.state, dir: o.from.dir };
  }
  if (o.from.kind === 'weights') {
    const adapter = await readPeftAdapter(o.from.dir);
    return {
      replica: new AdapterReplica(
        layout,
        flatten(layout, new Map([...adapter.tensors].map(([k, t]) => [k, t.data]))),
      ),
    };
  }
  return { replica: new AdapterReplica(layout, flatten(layout, initLoraWeights(o.targets, o.r, o.seed))) };
}

/** Writes the run's adapter into outputDir; returns a line saying which weights it is. */
export async function writeRunResult(
  outputDir: string,
  keeper: CheckpointKeeper,
  config: LoraConfig,
  replica: AdapterReplica,
): Promise<string> {
  const best = keeper.best;
  if (best) {
    const adapter = await readPeftAdapter(best.path);
    await writeFinalAdapter(outputDir, (dir) => writePeftAdapter(dir, adapter));
    return `best eval loss ${best.loss.toFixed(4)} at ${best.path}: that adapter is the result`;
  }
  await writeFinalAdapter(outputDir, (dir) =>
    writePeftAdapter(dir, { config, tensors: adapterTensors(replica.layout, replica.state.params) }),
  );
  return `the adapter after step ${replica.step} is the result`;
}

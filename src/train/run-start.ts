// How a run starts and ends, the same for `finetune` and the coordinator: the adapter replica to
// begin from (an exact checkpoint checked against this run's data plan, an adapter's weights only,
// or PEFT's initialisation), and the adapter written as the result (the best checkpoint's, when an
// evaluation picked one, else the last weights).
import { initLoraWeights } from '../checkpoint/lora-init.ts';
import type { LoraSettings } from '../checkpoint/lora-spec.ts';
import type { LoraTarget } from '../checkpoint/lora-targets.ts';
import { type LoraConfig, readPeftAdapter, writePeftAdapter } from '../checkpoint/peft-adapter.ts';
import { type PlanFlags, planMismatch, scheduleChange } from '../data/fingerprint.ts';
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
  /** Set when the checkpoint continues under a longer (or shorter) schedule: which flags changed. */
  readonly scheduleChanged?: string;
  /** The checkpoint resumed from (exact and newest). */
  readonly dir?: string;
}

/** A checkpoint written for other data or flags: not a damaged file, so never skipped. */
export class PlanMismatchError extends Error {
  override name = 'PlanMismatchError';
}

/** This run's plan, to compare with a checkpoint's. */
export interface PlanIdentity {
  readonly fingerprint: string;
  readonly datasetFingerprint: string;
  readonly flags: PlanFlags;
  readonly totalSteps: number;
}

/**
 * Whether checkpoint `ck` (at its step) can continue as this run: the same plan, or the same data
 * and flags with only --num_epochs/--max_steps changed and the checkpoint's step still inside the
 * new schedule. Returns the schedule change (or null); throws naming every flag that differs.
 */
function checkPlan(dir: string, state: TrainerState, plan: PlanIdentity): string | null {
  const saved = state.lora_mpt;
  if (saved.plan_fingerprint === plan.fingerprint) return null;
  if (saved.plan_flags === undefined) {
    throw new PlanMismatchError(
      `${dir} was written for other data or flags (plan ${saved.plan_fingerprint.slice(0, 12)}, now ${plan.fingerprint.slice(0, 12)}); resume with the run's original --data_path, batch sizes, epochs, seed and cutoff, or use another --output_dir`,
    );
  }
  const why = planMismatch(
    { datasetSha: saved.dataset_fingerprint, flags: saved.plan_flags },
    { datasetSha: plan.datasetFingerprint, flags: plan.flags },
  );
  if (why !== null) {
    throw new PlanMismatchError(
      `${dir} cannot continue as this run: ${why}. Resume with the run's own flags, or use another --output_dir`,
    );
  }
  const change = scheduleChange(saved.plan_flags, plan.flags);
  if (state.global_step > plan.totalSteps) {
    throw new PlanMismatchError(
      `${dir} is at step ${state.global_step}, past the ${plan.totalSteps} steps of the new schedule (${change}); a run can only be extended`,
    );
  }
  return change;
}

export async function startReplica(o: {
  readonly from: StartFrom;
  readonly layout: ParamLayout;
  readonly targets: readonly LoraTarget[];
  readonly lora: LoraSettings;
  readonly seed: number;
  readonly plan: PlanIdentity;
  /** The LoRA variant's own tensors given the new A and B (DoRA's magnitudes, ‖W + s·B·A‖ per row:
   * src/checkpoint/lora-variants), read only for a fresh start. */
  readonly initialVariantTensors?: (
    lora: ReadonlyMap<string, Float32Array>,
  ) => Promise<ReadonlyMap<string, Float32Array>>;
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
    const change = checkPlan(o.from.dir, ck.state, o.plan);
    const replica = new AdapterReplica(layout, ck.params);
    replica.restore({ ...ck, step: ck.state.lora_mpt.optimizer_steps });
    return { replica, resumed: ck.state, dir: o.from.dir, ...(change ? { scheduleChanged: change } : {}) };
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
  const init = initLoraWeights(o.targets, o.lora, o.seed);
  for (const [name, v] of (await o.initialVariantTensors?.(init)) ?? []) init.set(name, v);
  return { replica: new AdapterReplica(layout, flatten(layout, init)) };
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

// The bookkeeping shared by `finetune` and the coordinator around checkpoints: the log history,
// the latest evaluation, the best checkpoint so far (lowest eval loss among checkpoints saved right
// after an evaluation, as the HF Trainer's load_best_model_at_end), saving every save_steps and
// pruning to save_total_limit without ever pruning the best.
import { join } from 'node:path';
import type { LoraConfig } from '../checkpoint/peft-adapter.ts';
import type { PlanFlags } from '../data/fingerprint.ts';
import { checkpointName, pruneCheckpoints } from './checkpoint-dirs.ts';
import type { AdapterReplica } from './replica.ts';
import type { RunData } from './run-data.ts';
import { type LogEntry, saveTrainingCheckpoint, type TrainerState } from './training-checkpoint.ts';

export interface CheckpointKeeperOptions {
  readonly outputDir: string;
  readonly saveSteps: number;
  readonly saveTotalLimit: number;
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  readonly loraConfig: LoraConfig;
  readonly replica: AdapterReplica;
  readonly runId: string;
  readonly planFingerprint: string;
  readonly planFlags?: PlanFlags;
  readonly datasetFingerprint: string;
  readonly seed: number;
  /** The state of the checkpoint a run resumed from: its history and best carry on. */
  readonly resumed?: TrainerState;
}

export class CheckpointKeeper {
  readonly history: LogEntry[];
  private bestMetric: number | null;
  private bestPath: string | null;
  private lastEval: { step: number; loss: number } | undefined;
  /** The newest checkpoint on disk (the one resumed from, or the last saved). */
  private lastSaved: number;

  constructor(private readonly o: CheckpointKeeperOptions) {
    this.history = [...(o.resumed?.log_history ?? [])];
    this.bestMetric = o.resumed?.best_metric ?? null;
    this.bestPath = o.resumed?.best_model_checkpoint ?? null;
    this.lastSaved = o.resumed?.global_step ?? 0;
  }

  get best(): { loss: number; path: string } | null {
    return this.bestMetric === null || this.bestPath === null
      ? null
      : { loss: this.bestMetric, path: this.bestPath };
  }

  recordEval(step: number, loss: number, tokens: number): void {
    this.lastEval = { step, loss };
    this.history.push({ step, eval_loss: loss, eval_tokens: tokens });
  }

  /** Saves checkpoint-<done> when due (every save_steps, and at the end). Returns its path, if saved. */
  async afterStep(done: number): Promise<{ path: string; pruned: string[] } | undefined> {
    if (done % this.o.saveSteps !== 0 && done !== this.o.totalSteps) return undefined;
    return this.save(done);
  }

  /** Saves checkpoint-<done> unless the newest checkpoint is already that step (a run stopped early). */
  async saveIfNewer(done: number): Promise<{ path: string; pruned: string[] } | undefined> {
    return done > this.lastSaved ? this.save(done) : undefined;
  }

  private async save(done: number): Promise<{ path: string; pruned: string[] }> {
    const path = join(this.o.outputDir, checkpointName(done));
    const ev = this.lastEval;
    if (ev?.step === done && (this.bestMetric === null || ev.loss < this.bestMetric)) {
      this.bestMetric = ev.loss;
      this.bestPath = path;
    }
    await saveTrainingCheckpoint(this.o.outputDir, this.o.replica, this.o.loraConfig, this.state(done));
    this.lastSaved = done;
    const pruned = await pruneCheckpoints(
      this.o.outputDir,
      this.o.saveTotalLimit,
      this.bestPath ?? undefined,
    );
    return { path, pruned };
  }

  state(done: number): TrainerState {
    return {
      global_step: done,
      epoch: done / this.o.stepsPerEpoch,
      max_steps: this.o.totalSteps,
      best_metric: this.bestMetric,
      best_model_checkpoint: this.bestPath,
      log_history: this.history,
      lora_mpt: {
        run_id: this.o.runId,
        plan_fingerprint: this.o.planFingerprint,
        ...(this.o.planFlags ? { plan_flags: this.o.planFlags } : {}),
        dataset_fingerprint: this.o.datasetFingerprint,
        seed: this.o.seed,
        optimizer_steps: this.o.replica.state.step,
      },
    };
  }
}

/** The keeper of a run, from its settings, data plan and starting replica (finetune and coordinator). */
export function checkpointKeeperFor(
  s: {
    readonly outputDir: string;
    readonly saveSteps: number;
    readonly saveTotalLimit: number;
    readonly seed: number;
  },
  data: RunData,
  run: {
    readonly runId: string;
    readonly loraConfig: LoraConfig;
    readonly replica: AdapterReplica;
    readonly resumed?: TrainerState | undefined;
  },
): CheckpointKeeper {
  return new CheckpointKeeper({
    outputDir: s.outputDir,
    saveSteps: s.saveSteps,
    saveTotalLimit: s.saveTotalLimit,
    totalSteps: data.plan.totalSteps,
    stepsPerEpoch: data.plan.stepsPerEpoch,
    loraConfig: run.loraConfig,
    replica: run.replica,
    runId: run.runId,
    planFingerprint: data.planFingerprint,
    planFlags: data.planFlags,
    datasetFingerprint: data.datasetFingerprint,
    seed: s.seed,
    ...(run.resumed ? { resumed: run.resumed } : {}),
  });
}

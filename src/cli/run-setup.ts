// How a training run starts and ends, the same for `finetune` and `coordinator` (which differ only
// in where the workers are): resolve the base model and tokenizer, plan the data, pick the replica
// to start from, build the step driver's options with the run's journal, and write the result.
// Nothing here loads the model: the coordinator's process never imports TensorFlow.js.

import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { type LoraSettings, loraScaling } from '../checkpoint/lora-spec.ts';
import { type LoraTarget, targetModulesOf } from '../checkpoint/lora-targets.ts';
import { loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import { initialVariantTensors } from '../checkpoint/lora-variants/initial-tensors.ts';
import {
  ADAPTER_CONFIG,
  ADAPTER_SAFETENSORS,
  type LoraConfig,
  newLoraConfig,
} from '../checkpoint/peft-adapter.ts';
import type { AllReduceAlgorithm, GradientEncoding } from '../collective/index.ts';
import { RunJournal } from '../coordinator/run-journal.ts';
import type { RunOutcome, StepDriver, StepDriverOptions } from '../coordinator/step-driver.ts';
import { Tokenizer } from '../data/tokenizer.ts';
import { eosAndBos } from '../data/tokenizer-config.ts';
import type { Events } from '../events/events.ts';
import { hubOptionsFromEnv } from '../hub/hf-cache.ts';
import { adapterLayout } from '../train/adapter-layout.ts';
import { removeStaleTemporaries } from '../train/atomic-write.ts';
import { type CheckpointKeeper, checkpointKeeperFor } from '../train/checkpoint-keeper.ts';
import { linearWarmupLr } from '../train/lr-schedule.ts';
import { MetricsLog } from '../train/metrics-log.ts';
import type { ParamLayout } from '../train/param-layout.ts';
import { type AdapterReplica, MAX_GRAD_NORM } from '../train/replica.ts';
import type { RunConfig } from '../train/run-config.ts';
import { prepareRunData, type RunData } from '../train/run-data.ts';
import { type StartFrom, startReplica, writeRunResult } from '../train/run-start.ts';
import { type BaseModel, openBaseModel } from './base-model.ts';
import { UsageError } from './flags.ts';
import { stopOnSignals } from './stop-signals.ts';
import type { TrainingSettings } from './training-settings.ts';

export interface PreparedRun {
  readonly runId: string;
  readonly model: BaseModel;
  readonly modelFingerprint: string;
  readonly layout: ParamLayout;
  readonly targets: readonly LoraTarget[];
  readonly data: RunData;
  readonly replica: AdapterReplica;
  readonly loraConfig: LoraConfig;
  /** The run's LoRA spec with target_modules resolved for the base model (a null flag default
   * becomes its family's PEFT default), as adapter_config.json and the workers get it. */
  readonly lora: LoraSettings;
  readonly keeper: CheckpointKeeper;
  readonly metricsLog: MetricsLog;
  /** The step the run starts at (0, or the checkpoint's). */
  readonly startStep: number;
}

/**
 * Everything before the first step. `startFrom` picks the replica given the checkpoints already in
 * --output_dir (finetune: only what --resume_from_checkpoint says; coordinator: also the newest one).
 */
export async function prepareRun(
  s: TrainingSettings,
  events: Events,
  o: {
    readonly startFrom: (outputDir: string) => Promise<StartFrom>;
    readonly runId: (resumedRunId: string | undefined) => string;
    /** Runs on the resolved model directory before any weight file is opened (finetune: the memory
     * check, src/worker/memory-check.ts; the coordinator loads no model and passes none). */
    readonly beforeOpening?: (modelDir: string) => Promise<void>;
  },
): Promise<PreparedRun> {
  for (const w of s.warnings) events.warn('warning', w);
  const model = await openBaseModel(s.baseModel, o.beforeOpening);
  const tokenizerPath = s.tokenizer ?? model.tokenizerJson;
  if (!tokenizerPath) {
    throw new UsageError(
      `--base_model ${s.baseModel}: no tokenizer.json beside the config (${model.dir}); pass --tokenizer PATH`,
    );
  }
  const lora = { ...s.lora, targetModules: targetModulesOf(model.config, s.lora) };
  checkBlockNumbers(lora.layersToTransform, model.config.nLayers);
  const { layout, targets } = adapterLayout(model.config, lora);
  const variant = loraVariantOf(lora);
  if (model.weightless && targets.some((t) => variant.extraTensors(t).length > 0)) {
    // Before the data is prepared: the replica's start would ask for the weights much later.
    throw new UsageError(
      `--base_model ${s.baseModel} has no weights, and the LoRA variant (--use_dora) starts its own tensors from them: the synthetic backend trains plain LoRA only`,
    );
  }
  const tokenizer = Tokenizer.fromFile(tokenizerPath);
  const data = await prepareRunData({
    ...s,
    tokenizer,
    eosTokenId: eosAndBos(tokenizerPath, tokenizer).eos,
    hub: hubOptionsFromEnv(process.env, homedir()),
    events,
  });
  await mkdir(s.outputDir, { recursive: true });
  // A crash mid-write (SIGKILL while saving a checkpoint) leaves only temporaries; clear them.
  const stale = await removeStaleTemporaries(s.outputDir);
  if (stale.length > 0) {
    events.info(
      'stale_writes_removed',
      `removed ${stale.length} unfinished write(s) of an interrupted run: ${stale.join(', ')}`,
      { paths: stale },
    );
  }
  const from = await o.startFrom(s.outputDir);
  const {
    replica,
    resumed,
    dir: resumedFrom,
    scheduleChanged,
  } = await startReplica({
    from,
    onSkipped: (dir, why) =>
      events.warn('checkpoint_skipped', `skipped ${dir}, which cannot be read: ${why}`, { path: dir, why }),
    layout,
    targets,
    lora,
    seed: s.seed,
    initialVariantTensors: (start: ReadonlyMap<string, Float32Array>) =>
      initialVariantTensors(variant, targets, (n) => model.readTensor(n), {
        weights: start,
        scale: loraScaling(lora),
      }),
    plan: {
      fingerprint: data.planFingerprint,
      datasetFingerprint: data.datasetFingerprint,
      flags: data.planFlags,
      totalSteps: data.plan.totalSteps,
    },
  });
  const runId = o.runId(resumed?.lora_mpt.run_id);
  if (resumedFrom !== undefined) {
    const extended = scheduleChanged
      ? `, schedule now ${data.plan.totalSteps} steps (${scheduleChanged})`
      : '';
    events.info(
      'run_resumed',
      `resuming run ${runId} from ${resumedFrom} at step ${replica.step}${extended}`,
      {
        run_id: runId,
        from: resumedFrom,
        step: replica.step,
        ...(scheduleChanged ? { schedule_changed: scheduleChanged, total_steps: data.plan.totalSteps } : {}),
      },
    );
  } else if (from.kind === 'weights') {
    events.info(
      'run_resumed',
      `starting from the adapter weights in ${from.dir} (no optimizer state: step 0)`,
      {
        run_id: runId,
        from: from.dir,
        step: 0,
      },
    );
  }
  const loraConfig = newLoraConfig(lora, s.baseModel);
  const keeper = checkpointKeeperFor(s, data, { runId, loraConfig, replica, resumed });
  return {
    runId,
    model,
    modelFingerprint: model.fingerprint,
    layout,
    targets,
    data,
    replica,
    loraConfig,
    lora,
    keeper,
    metricsLog: new MetricsLog(join(s.outputDir, 'metrics.jsonl')),
    startStep: replica.step,
  };
}

/** The blocks --layers_to_transform (or a resumed adapter) names must exist in the model. */
function checkBlockNumbers(blocks: readonly number[] | null, nLayers: number): void {
  const bad = blocks?.find((b) => b >= nLayers);
  if (bad !== undefined) {
    throw new UsageError(
      `--layers_to_transform names block ${bad}; the model has ${nLayers} blocks (0 to ${nLayers - 1})`,
    );
  }
}

/** What every worker of the run must agree on (sent in the Welcome; finetune's worker gets it directly). */
export function runConfigOf(
  run: PreparedRun,
  s: TrainingSettings,
  allReduce: {
    readonly algorithm: AllReduceAlgorithm;
    readonly timeoutMs: number;
    readonly encoding?: GradientEncoding;
    /** Largest frame in bytes; 0 or absent: the NATS server's max_payload. */
    readonly frameBytes?: number;
  },
): RunConfig {
  return {
    runId: run.runId,
    baseModel: s.baseModel,
    lora: run.lora,
    seed: s.seed,
    maxGradNorm: MAX_GRAD_NORM,
    gradientCheckpointing: s.gradientCheckpointing,
    load8bit: s.load8bit,
    allReduceAlgorithm: allReduce.algorithm,
    allReduceEncoding: allReduce.encoding ?? 'f32',
    allReduceTimeoutMs: allReduce.timeoutMs,
    allReduceFrameBytes: allReduce.frameBytes ?? 0,
  };
}

/** The step driver's options that do not depend on where the workers are, and the run's journal. */
export function driverOptionsOf(
  run: PreparedRun,
  s: TrainingSettings,
  events: Events,
): {
  journal: RunJournal;
  options: Omit<StepDriverOptions, 'observeReduce' | 'minWorkers' | 'algorithm' | 'observerId'>;
} {
  const total = run.data.plan.totalSteps;
  const journal = new RunJournal({
    plan: run.data.plan,
    keeper: run.keeper,
    metricsLog: run.metricsLog,
    events,
    startStep: run.startStep,
  });
  return {
    journal,
    options: {
      runId: run.runId,
      modelFingerprint: run.modelFingerprint,
      totalSteps: total,
      maxGradNorm: MAX_GRAD_NORM,
      evalSteps: s.evalSteps,
      replica: run.replica,
      microBatches: (step) => run.data.plan.microBatchesForStep(step),
      evalMicroBatches: run.data.evalBatches,
      learningRate: (done) => linearWarmupLr(s.learningRate, done, s.warmupSteps, total),
      onCommit: journal.onCommit,
      onEval: journal.onEval,
      afterStep: journal.afterStep,
      events,
    },
  };
}

/** Runs the driver to its end (SIGTERM/SIGINT stop it), writes the result; resolves with the exit code. */
export async function driveToEnd(
  driver: StepDriver,
  run: PreparedRun,
  s: TrainingSettings,
  journal: RunJournal,
  events: Events,
): Promise<number> {
  const signals = stopOnSignals((reason) => driver.stop(reason));
  try {
    const outcome = await driver.done;
    await finishRun(run, s, outcome, journal, events);
    return outcome.finished ? 0 : signals.exitCode();
  } finally {
    signals.dispose();
  }
}

/**
 * A run whose output dir already holds its last step (a Job restarted after success, a command run
 * again) waits for nothing: the result is (re)written from that checkpoint and the process exits 0.
 */
export async function endIfAlreadyFinished(
  run: PreparedRun,
  s: TrainingSettings,
  journal: RunJournal,
  events: Events,
): Promise<boolean> {
  const total = run.data.plan.totalSteps;
  if (run.startStep < total) return false;
  events.info(
    'run_already_finished',
    `${s.outputDir} holds a finished run (step ${run.startStep} of ${total})`,
    {
      step: run.startStep,
      total_steps: total,
    },
  );
  await finishRun(
    run,
    s,
    { steps: run.startStep, finished: true, reason: 'already finished' },
    journal,
    events,
  );
  return true;
}

/** After the driver is done: the adapter (best or last) when the run finished, and what happened. */
export async function finishRun(
  run: PreparedRun,
  s: TrainingSettings,
  outcome: RunOutcome,
  journal: RunJournal,
  events: Events,
): Promise<void> {
  const total = run.data.plan.totalSteps;
  if (!outcome.finished) {
    // Steps committed since the last checkpoint are not lost to a stop (a pod evicted, Ctrl-C).
    const saved = await run.keeper.saveIfNewer(outcome.steps);
    if (saved) {
      events.info('checkpoint_saved', `saved ${saved.path} before stopping`, {
        step: outcome.steps,
        path: saved.path,
      });
    }
    events.warn(
      'run_stopped',
      `stopped at step ${outcome.steps} of ${total} (${outcome.reason}); the newest checkpoint in ${s.outputDir} resumes it`,
      { step: outcome.steps, total_steps: total, reason: outcome.reason },
    );
    return;
  }
  const which = await writeRunResult(s.outputDir, run.keeper, run.loraConfig, run.replica);
  const adapter = resolve(s.outputDir, ADAPTER_SAFETENSORS);
  events.info('adapter_written', `${which}; adapter: ${adapter} (+ ${ADAPTER_CONFIG})`, { path: adapter });
  const ran = outcome.steps - run.startStep;
  events.info(
    'run_finished',
    `done: ${ran} steps in ${journal.seconds.toFixed(0)} s` +
      (ran > 0 ? `, loss ${journal.firstLoss.toFixed(4)} -> ${journal.lastLoss.toFixed(4)}` : '') +
      `; metrics: ${resolve(s.outputDir, 'metrics.jsonl')}`,
    { step: outcome.steps, total_steps: total, path: adapter },
  );
}

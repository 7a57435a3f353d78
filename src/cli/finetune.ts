// `lora-mpt finetune`: the seed's finetune.py on one machine. Builds the typed run from flags,
// prepares data and model, trains (src/train/trainer.ts) and writes the PEFT adapter to output_dir.

import { mkdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { hubOptionsFromEnv } from '../data/hf-cache.ts';
import { Tokenizer } from '../data/tokenizer.ts';
import type { BackendChoice } from '../model/backend.ts';
import { resolveModel } from '../model/hub.ts';
import { ADAPTER_CONFIG, ADAPTER_SAFETENSORS, newLoraConfig } from '../model/peft-adapter.ts';
import { removeStaleTemporaries } from '../train/atomic-write.ts';
import { listCheckpoints } from '../train/checkpoint-dirs.ts';
import { checkpointKeeperFor } from '../train/checkpoint-keeper.ts';
import { MetricsLog } from '../train/metrics-log.ts';
import { Progress } from '../train/progress.ts';
import { prepareRunData } from '../train/run-data.ts';
import { startReplica, writeRunResult } from '../train/run-start.ts';
import { train } from '../train/trainer.ts';
import { TRAINER_STATE_FILE } from '../train/training-checkpoint.ts';
import { loadModelCompute } from '../worker/model-compute.ts';
import { backendOptions } from './backend-options.ts';
import type { Command } from './command.ts';
import { helpText, parseFlags, UsageError } from './flags.ts';
import { trainingFlags } from './training-flags.ts';
import { type TrainingSettings, trainingSettings } from './training-settings.ts';

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Where `--resume_from_checkpoint` points: an exact checkpoint, adapter weights only, or nothing. */
async function resumeSource(
  s: TrainingSettings,
): Promise<{ kind: 'exact' | 'weights'; dir: string } | undefined> {
  if (s.resumeFromCheckpoint === undefined) return undefined;
  let dir = s.resumeFromCheckpoint;
  if (dir === 'latest') {
    const all = await listCheckpoints(s.outputDir);
    if (all.length === 0)
      throw new UsageError(`--resume_from_checkpoint latest: no checkpoint-<step> in ${s.outputDir}`);
    dir = all[all.length - 1]!.path;
  }
  if (await exists(join(dir, TRAINER_STATE_FILE))) return { kind: 'exact', dir };
  if ((await exists(join(dir, ADAPTER_SAFETENSORS))) || (await exists(join(dir, 'adapter_model.bin')))) {
    return { kind: 'weights', dir };
  }
  throw new UsageError(
    `--resume_from_checkpoint ${dir}: neither a checkpoint (${TRAINER_STATE_FILE}) nor an adapter (${ADAPTER_SAFETENSORS}) is there`,
  );
}

export async function runFinetune(s: TrainingSettings): Promise<number> {
  const log = (line: string) => console.log(line);
  for (const w of s.warnings) console.warn(`warning: ${w}`);
  const model = await resolveModel(
    s.baseModel,
    process.env,
    'main',
    hubOptionsFromEnv(process.env, homedir()),
  );
  const tokenizerPath = s.tokenizer ?? model.tokenizerJson;
  if (!tokenizerPath) {
    throw new UsageError(
      `--base_model ${s.baseModel}: no tokenizer.json beside the weights (${model.dir}); pass --tokenizer PATH`,
    );
  }
  const data = await prepareRunData({ ...s, tokenizer: Tokenizer.fromFile(tokenizerPath), log });
  const backendOpts = backendOptions(s.numThreads, process.env);
  const loaded = await loadModelCompute(model.dir, s.backend as BackendChoice, s, backendOpts);
  log(loaded.backendSummary);
  log(
    `model: ${model.dir} (${(loaded.parameters / 1e6).toFixed(1)}M parameters) on ${loaded.backend}; ` +
      `LoRA r=${s.loraR} alpha=${s.loraAlpha} on [${s.loraTargetModules.join(', ')}]: ${loaded.layout.specs.length} tensors, ${loaded.layout.size} trainable values`,
  );
  const loraConfig = newLoraConfig({
    r: s.loraR,
    loraAlpha: s.loraAlpha,
    loraDropout: s.loraDropout,
    targetModules: s.loraTargetModules,
    baseModelNameOrPath: s.baseModel,
  });
  await mkdir(s.outputDir, { recursive: true });
  // A crash mid-write (SIGKILL while saving a checkpoint) leaves only temporaries; clear them.
  const stale = await removeStaleTemporaries(s.outputDir);
  if (stale.length > 0)
    log(`removed ${stale.length} unfinished write(s) of an interrupted run: ${stale.join(', ')}`);
  const { layout } = loaded;
  const resume = await resumeSource(s);
  const { replica, resumed } = await startReplica({
    from: resume ?? { kind: 'init' },
    layout,
    targets: loaded.compute.model.loraTargets,
    r: s.loraR,
    seed: s.seed,
    planFingerprint: data.planFingerprint,
  });
  const runId = resumed?.lora_mpt.run_id ?? `finetune-${Date.now().toString(36)}`;
  if (resume) {
    log(
      resumed
        ? `resuming from ${resume.dir} at step ${resumed.global_step}`
        : `starting from the adapter weights in ${resume.dir} (no optimizer state: step 0)`,
    );
  }
  const progress = new Progress(process.stdout, s.loggingSteps);
  const checkpoints = checkpointKeeperFor(s, data, { runId, loraConfig, replica, resumed });
  const result = await train({
    compute: loaded.compute,
    replica,
    data,
    checkpoints,
    learningRate: s.learningRate,
    warmupSteps: s.warmupSteps,
    maxGradNorm: 1.0,
    evalSteps: s.evalSteps,
    progress,
    metrics: new MetricsLog(join(s.outputDir, 'metrics.jsonl')),
  });
  log(await writeRunResult(s.outputDir, checkpoints, loraConfig, replica));
  log(
    `done: ${result.steps} steps in ${result.seconds.toFixed(0)} s, loss ${result.firstLoss.toFixed(4)} -> ${result.lastLoss.toFixed(4)}`,
  );
  log(
    `adapter: ${resolve(s.outputDir, ADAPTER_SAFETENSORS)} (+ ${ADAPTER_CONFIG}); metrics: ${resolve(s.outputDir, 'metrics.jsonl')}`,
  );
  return 0;
}

export const finetuneCommand: Command = {
  name: 'finetune',
  summary: 'fine-tune an MPT model with LoRA on instruction data, on this machine',
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      console.log(
        helpText(
          'lora-mpt finetune --base_model DIR|HUB_ID [flags]',
          'Trains a LoRA adapter with the flags of alpaca-lora / LoRA-MPT finetune.py and writes it in PEFT format.',
          trainingFlags,
        ),
      );
      return 0;
    }
    return runFinetune(trainingSettings(parseFlags(trainingFlags, argv)));
  },
};

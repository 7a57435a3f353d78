// `lora-mpt finetune`: the seed's finetune.py on one machine. Builds the typed run from flags,
// prepares data and model, trains (src/train/trainer.ts) and writes the PEFT adapter to output_dir.
import { mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Tokenizer } from '../data/tokenizer.ts';
import type { BackendChoice } from '../model/backend.ts';
import { resolveModel } from '../model/hub.ts';
import { initLoraWeights } from '../model/lora.ts';
import {
  ADAPTER_CONFIG,
  ADAPTER_SAFETENSORS,
  newLoraConfig,
  readPeftAdapter,
  writePeftAdapter,
} from '../model/peft-adapter.ts';
import { listCheckpoints } from '../train/checkpoint-dirs.ts';
import { CheckpointKeeper } from '../train/checkpoint-keeper.ts';
import { writeFinalAdapter } from '../train/final-adapter.ts';
import { MetricsLog } from '../train/metrics-log.ts';
import { flatten } from '../train/param-layout.ts';
import { Progress } from '../train/progress.ts';
import { AdapterReplica } from '../train/replica.ts';
import { prepareRunData } from '../train/run-data.ts';
import { train } from '../train/trainer.ts';
import { adapterTensors, loadTrainingCheckpoint, TRAINER_STATE_FILE } from '../train/training-checkpoint.ts';
import { loadModelCompute } from '../worker/model-compute.ts';
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
  const model = await resolveModel(s.baseModel, process.env);
  const tokenizerPath = s.tokenizer ?? model.tokenizerJson;
  if (!tokenizerPath) {
    throw new UsageError(
      `--base_model ${s.baseModel}: no tokenizer.json beside the weights (${model.dir}); pass --tokenizer PATH`,
    );
  }
  const data = await prepareRunData({ ...s, tokenizer: Tokenizer.fromFile(tokenizerPath), log });
  const loaded = await loadModelCompute(model.dir, s.backend as BackendChoice, s);
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
  const { layout } = loaded;
  const resume = await resumeSource(s);
  let replica: AdapterReplica;
  let resumedState: Awaited<ReturnType<typeof loadTrainingCheckpoint>>['state'] | undefined;
  let runId = `finetune-${Date.now().toString(36)}`;
  if (resume?.kind === 'exact') {
    const ck = await loadTrainingCheckpoint(resume.dir, layout);
    if (ck.state.lora_mpt.plan_fingerprint !== data.planFingerprint) {
      throw new UsageError(
        `--resume_from_checkpoint ${resume.dir} was written for other data or flags (plan ${ck.state.lora_mpt.plan_fingerprint.slice(0, 12)}, now ${data.planFingerprint.slice(0, 12)}); resume with the same --data_path, batch sizes, epochs, seed and cutoff`,
      );
    }
    replica = new AdapterReplica(layout, ck.params);
    replica.restore({ ...ck, step: ck.state.lora_mpt.optimizer_steps });
    resumedState = ck.state;
    runId = ck.state.lora_mpt.run_id;
    log(`resuming from ${resume.dir} at step ${ck.state.global_step}`);
  } else if (resume?.kind === 'weights') {
    const adapter = await readPeftAdapter(resume.dir);
    replica = new AdapterReplica(
      layout,
      flatten(layout, new Map([...adapter.tensors].map(([k, t]) => [k, t.data]))),
    );
    log(`starting from the adapter weights in ${resume.dir} (no optimizer state: step 0)`);
  } else {
    const targets = loaded.compute.model.loraTargets;
    replica = new AdapterReplica(layout, flatten(layout, initLoraWeights(targets, s.loraR, s.seed)));
  }
  const progress = new Progress(process.stdout, s.loggingSteps);
  const checkpoints = new CheckpointKeeper({
    outputDir: s.outputDir,
    saveSteps: s.saveSteps,
    saveTotalLimit: s.saveTotalLimit,
    totalSteps: data.plan.totalSteps,
    stepsPerEpoch: data.plan.stepsPerEpoch,
    loraConfig,
    replica,
    runId,
    planFingerprint: data.planFingerprint,
    datasetFingerprint: data.datasetFingerprint,
    seed: s.seed,
    ...(resumedState ? { resumed: resumedState } : {}),
  });
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
  if (result.bestCheckpoint) {
    const best = await readPeftAdapter(result.bestCheckpoint);
    await writeFinalAdapter(s.outputDir, (dir) => writePeftAdapter(dir, best));
    log(
      `best eval loss ${result.bestEvalLoss?.toFixed(4)} at ${result.bestCheckpoint}: that adapter is the result`,
    );
  } else {
    await writeFinalAdapter(s.outputDir, (dir) =>
      writePeftAdapter(dir, { config: loraConfig, tensors: adapterTensors(layout, replica.state.params) }),
    );
  }
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

// `lora-mpt finetune`: the seed's finetune.py on one machine. The same step driver as `coordinator`,
// with one in-process worker computing every micro-batch (src/cli/in-process-worker.ts): no gRPC, no
// NATS, and by construction the adapter N distributed workers give.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ADAPTER_SAFETENSORS } from '../checkpoint/peft-adapter.ts';
import { InProcessCollective } from '../collective/index.ts';
import { StepDriver } from '../coordinator/step-driver.ts';
import { loadProgress } from '../events/load-progress.ts';
import type { BackendChoice } from '../model/backend.ts';
import { listCheckpoints } from '../train/checkpoint-dirs.ts';
import type { StartFrom } from '../train/run-start.ts';
import { TRAINER_STATE_FILE } from '../train/training-checkpoint.ts';
import { checkBeforeLoading, loadModelCompute, type MemoryBudget } from '../worker/model-compute.ts';
import { loadSyntheticCompute } from '../worker/synthetic-compute.ts';
import { adoptResumedLora } from './adopt-resumed-lora.ts';
import { backendOptions } from './backend-options.ts';
import { type Command, flagCommand } from './command.ts';
import { deviceMemoryFlag, numThreadsFlag } from './compute-flags.ts';
import { type ParsedFlags, UsageError } from './flags.ts';
import { attachInProcessWorker } from './in-process-worker.ts';
import { eventsFromFlags, logFlags } from './log-flags.ts';
import { peakTflopsFlag } from './peak-flops.ts';
import { driverOptionsOf, driveToEnd, endIfAlreadyFinished, prepareRun, runConfigOf } from './run-setup.ts';
import { backendModelMismatch, syntheticFlags, syntheticProfileOf } from './synthetic-flags.ts';
import { trainingFlags } from './training-flags.ts';
import { type TrainingSettings, trainingSettings } from './training-settings.ts';

export const finetuneFlags = {
  ...trainingFlags,
  ...syntheticFlags,
  peak_tflops: peakTflopsFlag,
  num_threads: numThreadsFlag,
  device_memory_gb: deviceMemoryFlag,
  ...logFlags,
};

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Where `--resume_from_checkpoint` points: an exact checkpoint, adapter weights only, or nothing. */
async function resumeSource(s: TrainingSettings): Promise<StartFrom> {
  if (s.resumeFromCheckpoint === undefined) return { kind: 'init' };
  const dir = s.resumeFromCheckpoint;
  if (dir === 'latest') {
    const all = await listCheckpoints(s.outputDir);
    if (all.length === 0)
      throw new UsageError(`--resume_from_checkpoint latest: no checkpoint-<step> in ${s.outputDir}`);
    // The newest that loads (an unreadable one is skipped, and said so).
    return { kind: 'newest', dirs: all.map((c) => c.path).reverse() };
  }
  if (await exists(join(dir, TRAINER_STATE_FILE))) return { kind: 'exact', dir };
  if ((await exists(join(dir, ADAPTER_SAFETENSORS))) || (await exists(join(dir, 'adapter_model.bin')))) {
    return { kind: 'weights', dir };
  }
  throw new UsageError(
    `--resume_from_checkpoint ${dir}: neither a checkpoint (${TRAINER_STATE_FILE}) nor an adapter (${ADAPTER_SAFETENSORS}) is there`,
  );
}

export async function runFinetune(f: ParsedFlags<typeof finetuneFlags>): Promise<number> {
  const s = await adoptResumedLora(trainingSettings(f));
  const mismatch = backendModelMismatch(s.backend, s.baseModel);
  if (mismatch !== undefined) throw new UsageError(mismatch);
  const synthetic = s.backend === 'synthetic';
  const profile = synthetic ? syntheticProfileOf(f, process.env) : null;
  const events = eventsFromFlags(f, { label: '', stepEvery: s.loggingSteps });
  const budget: MemoryBudget = {
    microBatchSize: s.microBatchSize,
    cutoffLen: s.cutoffLen,
    memoryGib: f.device_memory_gb,
  };
  const backendOpts = backendOptions(f.num_threads, process.env);
  const run = await prepareRun(s, events, {
    startFrom: () => resumeSource(s),
    runId: (resumed) => resumed ?? `finetune-${Date.now().toString(36)}`,
    // Before the checkpoint's weight files are opened, let alone read.
    beforeOpening: async (dir) => {
      if (!synthetic) await checkBeforeLoading(dir, s.backend as BackendChoice, s, budget, backendOpts);
    },
  });
  const ev = events.child({ run_id: run.runId });
  const { journal, options } = driverOptionsOf(run, s, ev);
  if (await endIfAlreadyFinished(run, s, journal, ev)) return 0;
  const loaded = synthetic
    ? await loadSyntheticCompute(s.baseModel, s, profile)
    : await loadModelCompute(
        run.model.dir,
        s.backend as BackendChoice,
        s,
        budget,
        backendOpts,
        loadProgress(ev, run.model.dir),
      );
  ev.info('backend_selected', loaded.backendSummary, { backend: loaded.backend });
  if (loaded.memoryNote !== null) ev.warn('warning', loaded.memoryNote);
  ev.info(
    'model_loaded',
    `model: ${run.model.dir} (${(loaded.parameters / 1e6).toFixed(1)}M parameters) on ${loaded.backend}; ` +
      `LoRA r=${s.lora.r} alpha=${s.lora.loraAlpha} on [${[run.lora.targetModules].flat().join(', ')}]: ${loaded.layout.specs.length} tensors, ${loaded.layout.size} trainable values`,
    { backend: loaded.backend, parameters: loaded.parameters, lora_values: loaded.layout.size },
  );
  const collective = new InProcessCollective(run.runId);
  const config = runConfigOf(run, s, { algorithm: 'shard-owner', timeoutMs: 0 });
  const driver = new StepDriver({
    ...options,
    minWorkers: 1,
    algorithm: config.allReduceAlgorithm,
    observerId: 'finetune',
    observeReduce: (step, generation, members, signal) =>
      collective.observe({ step, generation, members, length: run.layout.size, signal }),
  });
  attachInProcessWorker(driver, {
    id: 'local',
    run: config,
    layout: loaded.layout,
    compute: loaded.compute,
    modelFingerprint: loaded.fingerprint,
    collective,
    events: ev.child({ worker: 'local' }),
  });
  return driveToEnd(driver, run, s, journal, ev);
}

export const finetuneCommand: Command = flagCommand({
  name: 'finetune',
  summary: 'fine-tune an MPT model with LoRA on instruction data, on this machine',
  usage: 'lora-mpt finetune --base_model DIR|HUB_ID [flags]',
  description:
    'Trains a LoRA adapter with the flags of alpaca-lora / LoRA-MPT finetune.py and writes it in PEFT format.',
  flags: finetuneFlags,
  run: runFinetune,
});

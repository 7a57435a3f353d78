// Everything a run needs from its data, built the same way by `finetune` and the coordinator: load
// and validate rows, format with the prompt template, tokenize with alpaca-lora's masking, split off
// the validation set, and plan every step's micro-batches (src/data). Logs a one-line summary.
import { buildDataPlan, buildEvalMicroBatches, type DataPlan } from '../data/data-plan.ts';
import { type PlanFlags, planFingerprint, planFlagsOf } from '../data/fingerprint.ts';
import type { MicroBatch } from '../data/micro-batch.ts';
import { prepareData } from '../data/prepare.ts';
import { loadPromptTemplate } from '../data/prompt-template.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import type { Events } from '../events/events.ts';
import type { HubOptions } from '../hub/hf-cache.ts';

export interface RunDataOptions {
  readonly dataPath: string;
  readonly tokenizer: Tokenizer;
  /** The EOS alpaca-lora appends (src/data/tokenizer-config.ts eosAndBos; MPT's GPT-NeoX: 0). */
  readonly eosTokenId: number;
  readonly promptTemplateName: string;
  readonly cutoffLen: number;
  readonly trainOnInputs: boolean;
  readonly addEosToken: boolean;
  readonly valSetSize: number;
  readonly batchSize: number;
  readonly microBatchSize: number;
  readonly numEpochs: number;
  readonly maxSteps: number;
  readonly seed: number;
  readonly groupByLength: boolean;
  readonly skipBadRows: boolean;
  /** Where a dataset id is looked up (and downloaded to). */
  readonly hub: HubOptions;
  readonly events: Events;
}

export interface RunData {
  readonly plan: DataPlan;
  readonly evalBatches: readonly MicroBatch[];
  readonly trainExamples: number;
  readonly valExamples: number;
  readonly skippedRows: number;
  readonly datasetFingerprint: string;
  /** Changes with the data or any flag that shapes the plan: a resume must match it. */
  readonly planFingerprint: string;
  /** The options behind planFingerprint, recorded in checkpoints to explain a mismatch. */
  readonly planFlags: PlanFlags;
}

export async function prepareRunData(o: RunDataOptions): Promise<RunData> {
  const t0 = Date.now();
  const prepared = await prepareData(o.tokenizer, {
    dataPath: o.dataPath,
    template: loadPromptTemplate(o.promptTemplateName),
    cutoffLen: o.cutoffLen,
    trainOnInputs: o.trainOnInputs,
    addEosToken: o.addEosToken,
    eosTokenId: o.eosTokenId,
    valSetSize: o.valSetSize,
    seed: o.seed,
    skipBadRows: o.skipBadRows,
    hub: o.hub,
  });
  const { loaded, train, val } = prepared;
  if (loaded.skipped.length > 0) {
    o.events.warn(
      'warning',
      `skipped ${loaded.skipped.length} bad rows (--skip_bad_rows), first: ${loaded.skipped[0]!.reason}`,
      { skipped_rows: loaded.skipped.length },
    );
  }
  const planOptions = {
    batchSize: o.batchSize,
    microBatchSize: o.microBatchSize,
    numEpochs: o.numEpochs,
    seed: o.seed,
    groupByLength: o.groupByLength,
    maxSteps: o.maxSteps,
  };
  const plan = buildDataPlan({ examples: train, ...planOptions });
  o.events.info(
    'data_ready',
    `data: ${loaded.records.length} records from ${loaded.files.length} file(s), ${train.length} train / ${val.length} validation, ` +
      `${plan.totalSteps} steps (${plan.stepsPerEpoch}/epoch, ${plan.gradientAccumulationSteps} micro-batches of ${o.microBatchSize} each) ` +
      `[${((Date.now() - t0) / 1000).toFixed(1)} s]`,
    {
      records: loaded.records.length,
      train_examples: train.length,
      val_examples: val.length,
      total_steps: plan.totalSteps,
      steps_per_epoch: plan.stepsPerEpoch,
    },
  );
  return {
    plan,
    evalBatches: buildEvalMicroBatches(val, o.microBatchSize),
    trainExamples: train.length,
    valExamples: val.length,
    skippedRows: loaded.skipped.length,
    datasetFingerprint: prepared.fingerprint,
    planFingerprint: planFingerprint(prepared.fingerprint, planOptions),
    planFlags: planFlagsOf(planOptions),
  };
}

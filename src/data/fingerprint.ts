// Fingerprints that tie a run to its data: the tokenized dataset (ids and labels, so template,
// cutoff, masking and tokenizer are all covered) and the plan flags. A checkpoint stores them; a
// resume with other data or other flags is refused instead of silently training on other batches.
import { createHash } from 'node:crypto';
import type { DataPlanOptions } from './data-plan.ts';
import type { TokenizedExample } from './tokenize-example.ts';

/** sha256 (hex) of the examples: count, then per example its length, ids and labels (LE int32). */
export function datasetFingerprint(examples: readonly TokenizedExample[]): string {
  const h = createHash('sha256');
  const head = new Uint32Array([examples.length]);
  h.update(new Uint8Array(head.buffer));
  for (const e of examples) {
    h.update(new Uint8Array(new Uint32Array([e.inputIds.length]).buffer));
    h.update(new Uint8Array(e.inputIds.buffer, e.inputIds.byteOffset, e.inputIds.byteLength));
    h.update(new Uint8Array(e.labels.buffer, e.labels.byteOffset, e.labels.byteLength));
  }
  return h.digest('hex');
}

/** Every option that shapes the plan, as a checkpoint records it (trainer_state.json). */
export interface PlanFlags {
  readonly batchSize: number;
  readonly microBatchSize: number;
  readonly numEpochs: number;
  readonly seed: number;
  readonly groupByLength: boolean;
  readonly maxSteps: number;
  readonly padToMultipleOf: number;
  readonly padTokenId: number;
}

export function planFlagsOf(o: Omit<DataPlanOptions, 'examples'>): PlanFlags {
  return {
    batchSize: o.batchSize,
    microBatchSize: o.microBatchSize,
    numEpochs: o.numEpochs,
    seed: o.seed,
    groupByLength: o.groupByLength,
    maxSteps: o.maxSteps ?? -1,
    padToMultipleOf: o.padToMultipleOf ?? 8,
    padTokenId: o.padTokenId ?? 0,
  };
}

/** sha256 (hex) of the dataset fingerprint and every option that shapes the plan. */
export function planFingerprint(datasetSha: string, o: Omit<DataPlanOptions, 'examples'>): string {
  return createHash('sha256')
    .update(datasetSha)
    .update(JSON.stringify(planFlagsOf(o)))
    .digest('hex');
}

/** The command-line flag of each plan option (the padding ones are fixed by lora-mpt). */
const FLAG_OF: Readonly<Record<keyof PlanFlags, string>> = {
  batchSize: '--batch_size',
  microBatchSize: '--micro_batch_size',
  numEpochs: '--num_epochs',
  seed: '--seed',
  groupByLength: '--group_by_length',
  maxSteps: '--max_steps',
  padToMultipleOf: 'padding to a multiple of (a lora-mpt version change)',
  padTokenId: 'the padding token id (a lora-mpt version change)',
};

/** Options that only say how long the run is: a plan's first N steps do not depend on them. */
const SCHEDULE: readonly (keyof PlanFlags)[] = ['numEpochs', 'maxSteps'];

/**
 * Why a checkpoint of plan `saved` cannot continue as plan `now`, naming each flag that differs with
 * both values; null when only the schedule's length differs (every step of the saved plan is the same
 * step of the new one, so the run continues on the same data in the same order).
 */
export function planMismatch(
  saved: { readonly datasetSha: string; readonly flags: PlanFlags },
  now: { readonly datasetSha: string; readonly flags: PlanFlags },
): string | null {
  const reasons: string[] = [];
  if (saved.datasetSha !== now.datasetSha) {
    reasons.push(
      `the tokenized data differ (dataset ${saved.datasetSha.slice(0, 12)} then, ${now.datasetSha.slice(0, 12)} now: --data_path, --val_set_size, --cutoff_len, --prompt_template_name, --train_on_inputs, --add_eos_token or the tokenizer changed)`,
    );
  }
  for (const key of Object.keys(FLAG_OF) as (keyof PlanFlags)[]) {
    if (SCHEDULE.includes(key) || saved.flags[key] === now.flags[key]) continue;
    reasons.push(`${FLAG_OF[key]} was ${saved.flags[key]}, now ${now.flags[key]}`);
  }
  return reasons.length === 0 ? null : reasons.join('; ');
}

/** "--max_steps 5 (was 3)"-style words for the schedule flags that changed. */
export function scheduleChange(saved: PlanFlags, now: PlanFlags): string {
  return SCHEDULE.filter((k) => saved[k] !== now[k])
    .map((k) => `${FLAG_OF[k]} ${now[k]} (was ${saved[k]})`)
    .join(', ');
}

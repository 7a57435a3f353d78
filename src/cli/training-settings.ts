// The one typed source of a training run's settings (STYLE: configuration has one source): built
// from the parsed `finetune`/`coordinator` flags, checked once, with warnings for flags accepted
// only for compatibility.
import { LORA_DEFAULTS, type LoraSettings, LoraSpecError, loraFlagsGiven } from '../checkpoint/lora-spec.ts';
import { BACKEND_NAMES } from './compute-flags.ts';
import type { ParsedFlags } from './flags.ts';
import { UsageError } from './flags.ts';
import type { trainingFlags } from './training-flags.ts';

export interface TrainingSettings {
  readonly baseModel: string;
  readonly dataPath: string;
  readonly outputDir: string;
  readonly batchSize: number;
  readonly microBatchSize: number;
  readonly numEpochs: number;
  readonly learningRate: number;
  readonly cutoffLen: number;
  readonly valSetSize: number;
  /** The LoRA spec: the flags given over the defaults (a resumed adapter's replace them, adopt-resumed-lora.ts). */
  readonly lora: Required<LoraSettings>;
  readonly trainOnInputs: boolean;
  readonly addEosToken: boolean;
  readonly groupByLength: boolean;
  readonly resumeFromCheckpoint: string | undefined;
  readonly promptTemplateName: string;
  readonly maxSteps: number;
  readonly seed: number;
  readonly backend: string;
  readonly gradientCheckpointing: boolean;
  readonly load8bit: boolean;
  readonly evalSteps: number;
  readonly saveSteps: number;
  readonly saveTotalLimit: number;
  readonly warmupSteps: number;
  readonly loggingSteps: number;
  readonly skipBadRows: boolean;
  readonly tokenizer: string | undefined;
  /** The LoRA flags the user gave (checked against a resumed adapter's spec). */
  readonly loraGiven: Partial<LoraSettings>;
  readonly warnings: readonly string[];
}

export function trainingSettings(f: ParsedFlags<typeof trainingFlags>): TrainingSettings {
  if (!f.base_model) {
    throw new UsageError(
      '--base_model is required: a local MPT directory or a Hugging Face id (mosaicml/mpt-7b-instruct)',
    );
  }
  if (f.micro_batch_size > f.batch_size) {
    throw new UsageError(
      `--micro_batch_size ${f.micro_batch_size} is larger than --batch_size ${f.batch_size}`,
    );
  }
  let loraGiven: Partial<LoraSettings>;
  try {
    loraGiven = loraFlagsGiven(f);
  } catch (err) {
    if (err instanceof LoraSpecError) throw new UsageError(err.message);
    throw err;
  }
  if (!(BACKEND_NAMES as readonly string[]).includes(f.backend)) {
    throw new UsageError(`--backend ${f.backend}: expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  const warnings: string[] = [];
  const wandb = (['wandb_project', 'wandb_run_name', 'wandb_watch', 'wandb_log_model'] as const).filter(
    (k) => f[k] !== '',
  );
  if (wandb.length > 0) {
    warnings.push(
      `${wandb.map((k) => `--${k}`).join(', ')} accepted but not supported: lora-mpt reports to Prometheus (/metrics) and ${f.output_dir}/metrics.jsonl`,
    );
  }
  if (f.batch_size % f.micro_batch_size !== 0) {
    warnings.push(
      `--batch_size ${f.batch_size} is not a multiple of --micro_batch_size ${f.micro_batch_size}: each step takes ${Math.floor(f.batch_size / f.micro_batch_size)} micro-batches (${Math.floor(f.batch_size / f.micro_batch_size) * f.micro_batch_size} examples), as the HF Trainer does`,
    );
  }
  return {
    baseModel: f.base_model,
    dataPath: f.data_path,
    outputDir: f.output_dir,
    batchSize: f.batch_size,
    microBatchSize: f.micro_batch_size,
    numEpochs: f.num_epochs,
    learningRate: f.learning_rate,
    cutoffLen: f.cutoff_len,
    valSetSize: f.val_set_size,
    lora: { ...LORA_DEFAULTS, ...loraGiven },
    trainOnInputs: f.train_on_inputs,
    addEosToken: f.add_eos_token,
    groupByLength: f.group_by_length,
    resumeFromCheckpoint: f.resume_from_checkpoint,
    promptTemplateName: f.prompt_template_name,
    maxSteps: f.max_steps,
    seed: f.seed,
    backend: f.backend,
    gradientCheckpointing: f.gradient_checkpointing,
    load8bit: f.load_8bit,
    evalSteps: f.eval_steps,
    saveSteps: f.save_steps,
    saveTotalLimit: f.save_total_limit,
    warmupSteps: f.warmup_steps,
    loggingSteps: f.logging_steps,
    skipBadRows: f.skip_bad_rows,
    tokenizer: f.tokenizer,
    loraGiven,
    warnings,
  };
}

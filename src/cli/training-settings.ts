// The one typed source of a training run's settings (STYLE: configuration has one source): built
// from the parsed `finetune`/`coordinator` flags, checked once, with warnings for flags accepted
// only for compatibility.
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
  readonly loraR: number;
  readonly loraAlpha: number;
  readonly loraDropout: number;
  readonly loraTargetModules: readonly string[];
  /** PEFT's use_rslora: scale alpha/sqrt(r) instead of alpha/r. */
  readonly useRslora: boolean;
  /** PEFT's use_dora: train a magnitude per output row of every LoRA Linear too. */
  readonly useDora: boolean;
  /** PEFT's layers_to_transform: the blocks that get LoRA; null = all. */
  readonly layersToTransform: readonly number[] | null;
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
  /** The LoRA flags the user gave (the others hold LORA_DEFAULTS until an adapter supplies them). */
  readonly loraGiven: LoraFlagValues;
  readonly warnings: readonly string[];
}

export interface LoraFlagValues {
  readonly loraR?: number;
  readonly loraAlpha?: number;
  readonly loraDropout?: number;
  readonly loraTargetModules?: readonly string[];
  readonly useRslora?: boolean;
  readonly useDora?: boolean;
  readonly layersToTransform?: readonly number[] | null;
}

/** finetune.py's defaults for the LoRA flags (target modules: PEFT's MPT default). */
export const LORA_DEFAULTS = {
  loraR: 8,
  loraAlpha: 16,
  loraDropout: 0.05,
  loraTargetModules: ['Wqkv'],
  useRslora: false,
  useDora: false,
  layersToTransform: null,
} as const;

/** --layers_to_transform's entries as block numbers (whole, >= 0, no repeats), in the given order. */
function blockNumbers(list: readonly string[]): number[] {
  if (list.length === 0) throw new UsageError('--layers_to_transform is empty; omit it to adapt every block');
  const out = list.map((x) => {
    const n = Number(x);
    if (!/^\d+$/.test(x.trim()) || !Number.isSafeInteger(n))
      throw new UsageError(`--layers_to_transform: "${x}" is not a block number (0, 1, 2, ...)`);
    return n;
  });
  const twice = out.find((n, i) => out.indexOf(n) !== i);
  if (twice !== undefined) throw new UsageError(`--layers_to_transform names block ${twice} twice`);
  return out;
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
  if (f.lora_dropout !== undefined && f.lora_dropout >= 1)
    throw new UsageError(`--lora_dropout ${f.lora_dropout} must be below 1`);
  if (f.lora_target_modules?.length === 0) throw new UsageError('--lora_target_modules is empty; try [Wqkv]');
  if (f.lora_alpha !== undefined && !(f.lora_alpha > 0))
    throw new UsageError(`--lora_alpha ${f.lora_alpha} must be above 0`);
  const loraGiven: LoraFlagValues = {
    ...(f.lora_r !== undefined ? { loraR: f.lora_r } : {}),
    ...(f.lora_alpha !== undefined ? { loraAlpha: f.lora_alpha } : {}),
    ...(f.lora_dropout !== undefined ? { loraDropout: f.lora_dropout } : {}),
    ...(f.lora_target_modules !== undefined ? { loraTargetModules: f.lora_target_modules } : {}),
    ...(f.use_rslora !== undefined ? { useRslora: f.use_rslora } : {}),
    ...(f.use_dora !== undefined ? { useDora: f.use_dora } : {}),
    ...(f.layers_to_transform !== undefined
      ? { layersToTransform: blockNumbers(f.layers_to_transform) }
      : {}),
  };
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
    ...LORA_DEFAULTS,
    ...loraGiven,
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

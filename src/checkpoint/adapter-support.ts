// What lora-mpt does with every field PEFT 0.21 writes into adapter_config.json: implement it, accept
// it because it cannot change an adapter's math on MPT, or refuse it by name — never compute a
// different model than PEFT would. Implemented: use_rslora, layers_to_transform (+ layers_pattern
// naming the family's block list: MPT "blocks", Llama "layers"), exclude_modules, use_dora (training; evaluation and generation merge it into the base
// weights). For training (a resumed adapter) layers_to_transform and exclude_modules are refused. A field this table does not know is accepted only at a neutral value
// (null, false, {}, []): a newer PEFT's switched-on feature is refused rather than ignored.
import type { ModelConfig } from './architecture.ts';
import type { LoraConfig } from './peft-adapter.ts';

export type AdapterUse = 'inference' | 'training';

export interface AdapterFeatures {
  readonly useDora: boolean;
  /** Only these block indices carry LoRA (null: every block). */
  readonly layersToTransform: readonly number[] | null;
  /** Modules left without LoRA even where target_modules matches (PEFT's rule: list = suffix, string = regex). */
  readonly excludeModules: readonly string[] | string | null;
}

/** Fields that only describe the adapter or steer PEFT's initialisation or bookkeeping. */
const NO_EFFECT = new Set([
  'auto_mapping',
  'base_model_name_or_path',
  'revision',
  'inference_mode',
  'peft_version',
  'lora_dropout', // dropout: training only, and lora-mpt trains with it
  'ensure_weight_tying', // only acts with trainable_token_indices / modules_to_save (refused)
  'qalora_group_size', // only acts with use_qalora (refused)
  'megatron_core', // a module path, only used with megatron_config (refused)
  'runtime_config', // PEFT runtime switches (ephemeral GPU offload), not the math
  // initialisation settings of init_lora_weights values that are refused below
  'loftq_config',
  'eva_config',
  'corda_config',
  'lora_ga_config',
  'kasa_config',
  'monteclora_config',
  'velora_config',
  'arrow_config',
]);

/** Fields LoraConfig models besides the LoRA spec (the spec's own never reach `extra`). */
const MODELLED = new Set(['bias', 'fan_in_fan_out', 'task_type', 'peft_type']);

/** Fields that change the model PEFT builds, refused unless at their neutral value, and why. */
const REFUSED: Readonly<Record<string, string>> = {
  alora_invocation_tokens: 'activated LoRA (aLoRA) applies only after its invocation tokens',
  alpha_pattern: 'per-module lora_alpha (alpha_pattern) is not implemented',
  rank_pattern: 'per-module ranks (rank_pattern) are not implemented',
  layer_replication: 'layer replication builds a deeper model than the base checkpoint',
  lora_bias: 'LoRA biases (lora_bias) are not implemented',
  megatron_config: 'Megatron parallel layers do not exist in MPT',
  modules_to_save:
    'modules_to_save stores whole trained modules (e.g. a new head) that lora-mpt does not load',
  target_parameters: 'LoRA on bare parameters (target_parameters) is not implemented',
  trainable_token_indices: 'trainable token embeddings are not implemented',
  use_bdlora: 'block-diagonal LoRA is not implemented',
  use_qalora: 'QA-LoRA (use_qalora) is not implemented',
};

const isNeutral = (v: unknown) =>
  v === null ||
  v === undefined ||
  v === false ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);

/** Where the adapter will be applied, as far as layers_pattern needs it: the block lists it may name
 * (the model's own when its config is known, else those of every family) and the model's name. */
export interface LayerContainers {
  readonly patterns: readonly string[];
  readonly model: string;
}

/** The block list of a model whose config is known. */
export function containersOf(config: ModelConfig): LayerContainers {
  return { patterns: [config.arch.layersPattern], model: config.arch.displayName };
}

/** The adapter's features for `use`, or an error naming the field lora-mpt cannot honour. */
export function adapterFeatures(
  c: LoraConfig,
  use: AdapterUse,
  source: string,
  layers: LayerContainers,
): AdapterFeatures {
  const fail = (field: string, why: string, value: unknown = c.extra[field]): never => {
    throw new Error(
      `${source}: ${field} ${JSON.stringify(value)}: ${why}; lora-mpt refuses it rather than compute a different model`,
    );
  };
  const x = c.extra;
  if (c.taskType !== 'CAUSAL_LM' && c.taskType !== '') {
    throw new Error(
      `${source}: task_type ${JSON.stringify(c.taskType)}: only CAUSAL_LM adapters apply to MPT's language model`,
    );
  }
  for (const [field, why] of Object.entries(REFUSED)) if (!isNeutral(x[field])) fail(field, why);
  const useDora = c.lora.useDora === true;
  const excludeModules = c.lora.excludeModules ?? null;
  if (use === 'training') {
    // The trainer's LoRA comes from --lora_r/--lora_alpha/--lora_dropout/--lora_target_modules,
    // --use_rslora, --use_dora and --layers_to_transform only.
    if (!isNeutral(excludeModules)) {
      fail(
        'exclude_modules',
        'training an adapter with modules excluded is not implemented (evaluation, generation and merge are); --layers_to_transform chooses blocks',
        excludeModules,
      );
    }
  }
  const layersToTransform = c.lora.layersToTransform ?? null;
  if (layersToTransform !== null) {
    const pattern = x.layers_pattern;
    const named = (p: unknown) => typeof p === 'string' && layers.patterns.includes(p);
    const ok = isNeutral(pattern) || named(pattern) || (Array.isArray(pattern) && pattern.every(named));
    if (!ok) {
      const list = layers.patterns.map((p) => `"${p}"`).join(' or ');
      fail('layers_pattern', `${layers.model} numbers its layers under ${list}`);
    }
  }
  for (const [field, v] of Object.entries(x)) {
    const known =
      NO_EFFECT.has(field) || MODELLED.has(field) || field in REFUSED || field === 'layers_pattern';
    if (!known && !isNeutral(v)) fail(field, 'this field is unknown to lora-mpt (a newer PEFT?)');
  }
  return { useDora, layersToTransform, excludeModules };
}

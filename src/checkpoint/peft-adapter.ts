// PEFT LoRA adapters on disk: adapter_config.json + adapter_model.safetensors (or a torch.save
// adapter_model.bin), read into float32 tensors and written back the way PEFT 0.21 writes them, so
// PeftModel.from_pretrained loads what lora-mpt trains.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostTensor } from '../formats/host-tensor.ts';
import { PyFloat, type PyJson, pyJsonDumps } from '../formats/py-json.ts';
import { SafetensorsReader, writeSafetensors } from '../formats/safetensors.ts';
import { TorchBinReader } from '../formats/torch-bin.ts';
import { ConfigError, FieldReader, isJsonObject } from './config-fields.ts';
import {
  completeLoraSettings,
  LORA_SPEC_FIELDS,
  type LoraSettings,
  loraSettingsJson,
  parseLoraSettings,
} from './lora-spec.ts';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_SAFETENSORS = 'adapter_model.safetensors';
export const ADAPTER_BIN = 'adapter_model.bin';
/** The PEFT release whose adapter_config.json fields and defaults the writer reproduces. */
export const PEFT_FORMAT_VERSION = '0.21.2';

export interface LoraConfig {
  /** The LoRA spec's fields (lora-spec.ts), as read or as the run trained with. */
  readonly lora: LoraSettings;
  readonly bias: 'none' | 'all' | 'lora_only';
  readonly fanInFanOut: boolean;
  readonly baseModelNameOrPath: string | null;
  readonly taskType: string;
  /** Every other PEFT field as read (PEFT's defaults for a new config); written back unchanged. */
  readonly extra: Readonly<Record<string, unknown>>;
}

export interface PeftAdapter {
  readonly config: LoraConfig;
  /** By PEFT saved name, e.g. `base_model.model.transformer.blocks.0.attn.Wqkv.lora_A.weight`. */
  readonly tensors: ReadonlyMap<string, HostTensor>;
}

/** What PEFT 0.21.2 writes for a LoraConfig with defaults, besides the LoRA spec and the fields
 * LoraConfig models. */
const PEFT_DEFAULTS: Readonly<Record<string, PyJson>> = {
  alora_invocation_tokens: null,
  alpha_pattern: {},
  arrow_config: null,
  auto_mapping: null,
  corda_config: null,
  ensure_weight_tying: false,
  eva_config: null,
  inference_mode: true,
  kasa_config: null,
  layer_replication: null,
  layers_pattern: null,
  loftq_config: {},
  lora_bias: false,
  lora_ga_config: null,
  megatron_config: null,
  megatron_core: 'megatron.core',
  modules_to_save: null,
  monteclora_config: null,
  peft_type: 'LORA',
  peft_version: PEFT_FORMAT_VERSION,
  qalora_group_size: 16,
  rank_pattern: {},
  revision: null,
  target_parameters: null,
  trainable_token_indices: null,
  use_bdlora: null,
  use_qalora: false,
  velora_config: null,
};

/** Fields LoraConfig holds besides the spec. */
const MODELLED = new Set(['bias', 'fan_in_fan_out', 'base_model_name_or_path', 'task_type']);

/** A config as `LoraConfig(task_type="CAUSAL_LM", …)` would have it, PEFT's defaults elsewhere. */
export function newLoraConfig(lora: LoraSettings, baseModelNameOrPath: string | null): LoraConfig {
  return {
    lora: completeLoraSettings(lora),
    bias: 'none',
    fanInFanOut: false,
    baseModelNameOrPath,
    taskType: 'CAUSAL_LM',
    extra: PEFT_DEFAULTS,
  };
}

export function parseLoraConfig(json: unknown, source: string): LoraConfig {
  if (!isJsonObject(json)) throw new ConfigError(`${source}: expected a JSON object`);
  const f: FieldReader = new FieldReader(json, source);
  const peftType = f.str('peft_type', 'LORA');
  if (peftType !== 'LORA') f.fail('peft_type', '"LORA" (only LoRA adapters are supported)');
  const fanInFanOut = f.bool('fan_in_fan_out', false);
  // MPT's Linears store [out, in]; fan_in_fan_out is for GPT-2's Conv1D and would transpose B·A.
  if (fanInFanOut) f.fail('fan_in_fan_out', 'false for MPT (nn.Linear weights)');
  const lora = parseLoraSettings(json, source, 'peft');
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!MODELLED.has(k) && !LORA_SPEC_FIELDS.has(k)) extra[k] = v;
  return {
    lora,
    bias: f.oneOf('bias', ['none', 'all', 'lora_only'], 'none'),
    fanInFanOut,
    baseModelNameOrPath: f.strOrNull('base_model_name_or_path'),
    taskType: f.str('task_type', 'CAUSAL_LM'),
    extra,
  };
}

/** adapter_config.json text, byte for byte as PEFT's `save_pretrained` writes it. */
export function loraConfigJson(c: LoraConfig): string {
  const out: Record<string, PyJson> = { ...(c.extra as Record<string, PyJson>) };
  out.inference_mode = true; // PEFT forces it on save
  Object.assign(out, loraSettingsJson(c.lora) as Record<string, PyJson>, {
    lora_dropout: new PyFloat(c.lora.loraDropout), // a Python float even when 0
    bias: c.bias,
    fan_in_fan_out: c.fanInFanOut,
    base_model_name_or_path: c.baseModelNameOrPath,
    task_type: c.taskType,
  });
  return pyJsonDumps(out);
}

const isFile = (p: string) =>
  stat(p).then(
    (s) => s.isFile(),
    () => false,
  );

async function readTensors(dir: string): Promise<Map<string, HostTensor>> {
  const tensors = new Map<string, HostTensor>();
  const st = join(dir, ADAPTER_SAFETENSORS);
  const bin = join(dir, ADAPTER_BIN);
  const reader = (await isFile(st))
    ? await SafetensorsReader.open(st)
    : (await isFile(bin))
      ? await TorchBinReader.open(bin)
      : null;
  if (!reader)
    throw new Error(`${dir}: no ${ADAPTER_SAFETENSORS} or ${ADAPTER_BIN} beside ${ADAPTER_CONFIG}`);
  try {
    for await (const t of reader.tensors()) tensors.set(t.name, t);
  } finally {
    await reader.close();
  }
  return tensors;
}

/** Checks the A/B pairs: `….lora_A.weight` [r, in] with `….lora_B.weight` [out, r]. */
function checkPairs(dir: string, r: number, tensors: ReadonlyMap<string, HostTensor>): void {
  for (const [name, a] of tensors) {
    if (!name.endsWith('.lora_A.weight')) continue;
    const bName = `${name.slice(0, -'.lora_A.weight'.length)}.lora_B.weight`;
    const b = tensors.get(bName);
    if (!b) throw new Error(`${dir}: ${name} has no matching ${bName}`);
    if (a.shape.length !== 2 || a.shape[0] !== r || b.shape.length !== 2 || b.shape[1] !== r) {
      throw new Error(
        `${dir}: ${name} ${JSON.stringify(a.shape)} / lora_B ${JSON.stringify(b.shape)} do not fit r=${r}`,
      );
    }
  }
  for (const name of tensors.keys()) {
    if (
      name.endsWith('.lora_B.weight') &&
      !tensors.has(`${name.slice(0, -'.lora_B.weight'.length)}.lora_A.weight`)
    ) {
      throw new Error(`${dir}: ${name} has no matching lora_A`);
    }
  }
}

export async function readPeftAdapter(dir: string): Promise<PeftAdapter> {
  const configPath = join(dir, ADAPTER_CONFIG);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    throw new Error(`${configPath}: cannot read the adapter config (${(e as Error).message})`);
  }
  const config = parseLoraConfig(json, configPath);
  const tensors = await readTensors(dir);
  // With a rank_pattern the ranks differ per module; using the adapter is refused by that field's
  // name (adapter-support.ts), not here by a shape that only looks wrong.
  const rankPattern = config.extra.rank_pattern;
  const patterned =
    typeof rankPattern === 'object' && rankPattern !== null && Object.keys(rankPattern).length > 0;
  if (!patterned) checkPairs(dir, config.lora.r, tensors);
  return { config, tensors };
}

/** Writes adapter_config.json + adapter_model.safetensors into `dir` (created if missing). */
export async function writePeftAdapter(dir: string, adapter: PeftAdapter): Promise<void> {
  checkPairs(dir, adapter.config.lora.r, adapter.tensors);
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, ADAPTER_SAFETENSORS), [...adapter.tensors.values()]);
  await writeFile(join(dir, ADAPTER_CONFIG), loraConfigJson(adapter.config));
}

// The LoRA spec: one value (LoraSettings) that a run passes down unchanged, from the command line to
// the training settings, the run config a worker receives, the model, and adapter_config.json both
// ways. Each field is described once, in FIELDS (its name in PEFT's file, its defaults, its check)
// and LORA_FLAGS (its flag), so a new PEFT field is an entry here plus its math where it has any.
import { ConfigError, isJsonObject } from './config-fields.ts';

/** PEFT's init_lora_weights values lora-mpt implements (others rewrite the base weights). */
export type InitLoraWeights = boolean | 'gaussian';

export interface LoraSettings {
  readonly r: number;
  readonly loraAlpha: number;
  readonly loraDropout: number;
  /** A list (suffix match on the dotted module name) or one regex (full match), as in PEFT; null is
   * PEFT's target_modules None: the model family's default (MPT [Wqkv], Llama [q_proj, v_proj]). */
  readonly targetModules: readonly string[] | string | null;
  /** PEFT's use_rslora: the update is scaled by alpha/√r instead of alpha/r. */
  readonly useRslora?: boolean;
  /** PEFT's use_dora: each target also learns a magnitude per output row (lora_magnitude_vector). */
  readonly useDora?: boolean;
  /** PEFT's layers_to_transform: only these block indices get LoRA (absent/null: all). */
  readonly layersToTransform?: readonly number[] | null;
  /** PEFT's exclude_modules: a list (suffix match) or one regex (full match) left without LoRA. */
  readonly excludeModules?: readonly string[] | string | null;
  /** PEFT's init_lora_weights: how a new adapter's A and B start (lora-init.ts). */
  readonly initLoraWeights?: InitLoraWeights;
}

/** A new run's spec where no flag says otherwise: finetune.py's defaults (targets: PEFT's default for
 * the base model's family, resolved where its config is read: lora-targets.ts, run-setup.ts). */
export const LORA_DEFAULTS: Required<LoraSettings> = {
  r: 8,
  loraAlpha: 16,
  loraDropout: 0.05,
  targetModules: null,
  useRslora: false,
  useDora: false,
  layersToTransform: null,
  excludeModules: null,
  initLoraWeights: true,
};

/** The training flags of the spec (`finetune` and `coordinator` list them among theirs). They have no
 * declared default: a resumed adapter's adapter_config.json supplies the fields no flag gives (a
 * flag that disagrees is an error), and LORA_DEFAULTS the rest. */
export const LORA_FLAGS = {
  lora_r: {
    kind: 'int',
    min: 1,
    help: 'LoRA rank r (default: 8, or the r of the adapter --resume_from_checkpoint names).',
  },
  lora_alpha: {
    kind: 'float',
    min: 0,
    help: "LoRA alpha, a number as in PEFT (16, 16.0, 8.5); the update is scaled by lora_alpha / lora_r (default: 16, or the resumed adapter's).",
  },
  use_rslora: {
    kind: 'bool',
    help: "PEFT's use_rslora (rank-stabilized LoRA): scale the update by lora_alpha / sqrt(lora_r) instead of lora_alpha / lora_r; written to adapter_config.json (default: false, or the resumed adapter's).",
  },
  use_dora: {
    kind: 'bool',
    help: "PEFT's use_dora (DoRA, weight-decomposed LoRA): each LoRA Linear also learns a magnitude per output row (lora_magnitude_vector, started at the base weight's row norms), and its weight becomes magnitude ⊙ (W + update) / ‖W + update‖ per row; written to adapter_config.json (default: false, or the resumed adapter's).",
  },
  lora_dropout: {
    kind: 'float',
    min: 0,
    help: "Dropout on the input of LoRA A during training (default: 0.05, or the resumed adapter's).",
  },
  lora_target_modules: {
    kind: 'list',
    help: "Modules that get LoRA adapters, by the family's names: MPT [Wqkv] or [Wqkv,out_proj,up_proj,down_proj]; Llama [q_proj,v_proj] or any of q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj (default: PEFT's default for the base model's family, MPT [Wqkv] and Llama [q_proj,v_proj], or the resumed adapter's).",
  },
  layers_to_transform: {
    kind: 'list',
    help: "PEFT's layers_to_transform: the block numbers (0-based) that get LoRA, e.g. [28,29,30,31]; the others stay frozen without an adapter (default: every block, or the resumed adapter's).",
  },
  init_lora_weights: {
    kind: 'string',
    help: "PEFT's init_lora_weights: how a new adapter starts. true: A kaiming-uniform, B = 0; gaussian: A ~ N(0, 1/r²), B = 0; false: A and B both as nn.Linear's own init (B != 0, so the model starts away from the base); written to adapter_config.json (default: true, or the resumed adapter's).",
  },
} as const;

type FlagName = keyof typeof LORA_FLAGS;

/** A bad spec value; the message names the flag or field and what it must be. */
export class LoraSpecError extends ConfigError {}

interface Field {
  readonly key: keyof LoraSettings;
  /** Its name in adapter_config.json. */
  readonly peft: string;
  /** What PEFT's LoraConfig holds when the file lacks the field. */
  readonly peftDefault?: unknown;
  /** A file without it keeps it absent (and it is not written back), as for fields older PEFT
   * releases did not write; PEFT's meaning is then LORA_DEFAULTS'. */
  readonly optional?: true;
  /** What a value must be, for errors. */
  readonly expected: string;
  /** Why PEFT's other values are refused (the error then says so instead of `expected`). */
  readonly refusal?: string;
  /** The value as lora-mpt holds it, or undefined when `v` is not one. */
  readonly read: (v: unknown) => unknown;
  readonly flag?: FlagName;
  /** The flag's parsed value as the field's value (throws naming the flag). */
  readonly fromFlag?: (v: unknown, flag: string) => unknown;
  /** Equality for the check of a flag against a resumed adapter (default: ===). */
  readonly same?: (a: unknown, b: unknown) => boolean;
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const strList = (v: unknown) => (Array.isArray(v) && v.every(isStr) ? (v as string[]) : undefined);
const blockList = (v: unknown) =>
  Array.isArray(v) && v.every((n) => Number.isSafeInteger(n) && n >= 0) ? (v as number[]) : undefined;
const sameSet = (a: unknown, b: unknown) =>
  Array.isArray(a) && Array.isArray(b)
    ? a.length === b.length && a.map(String).sort().join('\n') === b.map(String).sort().join('\n')
    : a === b;

/** --layers_to_transform's entries as block numbers (whole, >= 0, no repeats), in the given order. */
function blockNumbers(v: unknown, flag: string): number[] {
  const list = v as readonly string[];
  if (list.length === 0) throw new LoraSpecError(`--${flag} is empty; omit it to adapt every block`);
  const out = list.map((x) => {
    const n = Number(x);
    if (!/^\d+$/.test(x.trim()) || !Number.isSafeInteger(n))
      throw new LoraSpecError(`--${flag}: "${x}" is not a block number (0, 1, 2, ...)`);
    return n;
  });
  const twice = out.find((n, i) => out.indexOf(n) !== i);
  if (twice !== undefined) throw new LoraSpecError(`--${flag} names block ${twice} twice`);
  return out;
}

/** --init_lora_weights as python-fire spells a bool, or gaussian. */
const INIT_FLAG_VALUES: ReadonlyMap<string, InitLoraWeights> = new Map<string, InitLoraWeights>([
  ['true', true],
  ['True', true],
  ['false', false],
  ['False', false],
  ['gaussian', 'gaussian'],
]);

const FIELDS: readonly Field[] = [
  {
    key: 'r',
    peft: 'r',
    peftDefault: 8,
    expected: 'an integer >= 1',
    read: (v) => (Number.isInteger(v) && (v as number) >= 1 ? v : undefined),
    flag: 'lora_r',
  },
  {
    key: 'loraAlpha',
    peft: 'lora_alpha',
    peftDefault: 8,
    expected: 'a finite number',
    read: (v) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined),
    flag: 'lora_alpha',
    fromFlag: (v, flag) => {
      if (!((v as number) > 0)) throw new LoraSpecError(`--${flag} ${v} must be above 0`);
      return v;
    },
  },
  {
    key: 'loraDropout',
    peft: 'lora_dropout',
    peftDefault: 0,
    expected: 'a probability in [0, 1]',
    read: (v) => (typeof v === 'number' && v >= 0 && v <= 1 ? v : undefined),
    flag: 'lora_dropout',
    fromFlag: (v, flag) => {
      if ((v as number) >= 1) throw new LoraSpecError(`--${flag} ${v} must be below 1`);
      return v;
    },
  },
  {
    key: 'targetModules',
    peft: 'target_modules',
    expected: 'a non-empty list, a regex or null',
    // null: PEFT's target_modules None, the family's default.
    read: (v) => (v === null || isStr(v) ? v : strList(v)?.length ? v : undefined),
    flag: 'lora_target_modules',
    fromFlag: (v, flag) => {
      if ((v as readonly string[]).length === 0) throw new LoraSpecError(`--${flag} is empty; try [Wqkv]`);
      return v;
    },
    same: sameSet,
  },
  {
    key: 'useRslora',
    peft: 'use_rslora',
    peftDefault: false,
    expected: 'true or false',
    read: (v) => (typeof v === 'boolean' ? v : undefined),
    flag: 'use_rslora',
  },
  {
    key: 'useDora',
    peft: 'use_dora',
    optional: true,
    expected: 'true or false',
    read: (v) => (typeof v === 'boolean' ? v : undefined),
    flag: 'use_dora',
  },
  {
    key: 'layersToTransform',
    peft: 'layers_to_transform',
    optional: true,
    expected: 'null or a list of block numbers (or one, for a list of one)',
    // PEFT takes one index for a list of one, and an empty list for every layer.
    read: (v) =>
      v === null || (Array.isArray(v) && v.length === 0)
        ? null
        : Number.isSafeInteger(v) && (v as number) >= 0
          ? [v]
          : blockList(v),
    flag: 'layers_to_transform',
    fromFlag: blockNumbers,
    same: sameSet,
  },
  {
    key: 'excludeModules',
    peft: 'exclude_modules',
    optional: true,
    expected: 'null, a list of module names or one regex',
    read: (v) => (v === null || isStr(v) ? v : strList(v)),
  },
  {
    key: 'initLoraWeights',
    peft: 'init_lora_weights',
    optional: true,
    expected: 'true, false or "gaussian"',
    refusal:
      'this initialisation rewrites the base weights (PiSSA/OLoRA/CorDA/EVA/LoftQ...); convert the adapter with PEFT (path_initial_model_for_weight_conversion) first',
    read: (v) => (v === true || v === false || v === 'gaussian' ? v : undefined),
    flag: 'init_lora_weights',
    fromFlag: (v, flag) => {
      const mode = INIT_FLAG_VALUES.get(v as string);
      if (mode === undefined) throw new LoraSpecError(`--${flag}: "${v}" is not true, false or gaussian`);
      return mode;
    },
  },
];

/** adapter_config.json's names of the spec's fields (peft-adapter.ts keeps the others as read). */
export const LORA_SPEC_FIELDS: ReadonlySet<string> = new Set(FIELDS.map((f) => f.peft));

/**
 * The spec in `o`: adapter_config.json (`peft`: PEFT's names, PEFT's defaults for absent fields) or
 * the run config's nested `lora` (`wire`: lora-mpt's names, every field required). Throws naming
 * `source` and the field.
 */
export function parseLoraSettings(o: unknown, source: string, spelling: 'peft' | 'wire'): LoraSettings {
  if (!isJsonObject(o))
    throw new LoraSpecError(`${source}: expected a JSON object, got ${JSON.stringify(o)}`);
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) {
    const name = spelling === 'peft' ? f.peft : f.key;
    // JSON null is a value (layers_to_transform: null); only a missing field takes the default.
    const raw = o[name] !== undefined ? o[name] : spelling === 'peft' ? f.peftDefault : undefined;
    if (raw === undefined && spelling === 'peft' && f.optional) continue;
    const v = f.read(raw);
    if (v === undefined && f.refusal !== undefined && spelling === 'peft') {
      throw new LoraSpecError(
        `${source}: ${name} ${JSON.stringify(raw)}: ${f.refusal}; lora-mpt refuses it rather than compute a different model`,
      );
    }
    if (v === undefined) {
      throw new LoraSpecError(`${source}: "${name}" must be ${f.expected}, got ${JSON.stringify(o[name])}`);
    }
    out[f.key] = v;
  }
  return out as unknown as LoraSettings;
}

/** The spec fields the user gave as flags (parsed by the flag parser), checked; throws naming the flag. */
export function loraFlagsGiven(flags: Readonly<Record<string, unknown>>): Partial<LoraSettings> {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) {
    if (f.flag === undefined || flags[f.flag] === undefined) continue;
    out[f.key] = f.fromFlag ? f.fromFlag(flags[f.flag], f.flag) : flags[f.flag];
  }
  return out as Partial<LoraSettings>;
}

/** `s` with PEFT's meaning of every absent field filled in (an adapter's spec, read, made whole). */
export function completeLoraSettings(s: LoraSettings): Required<LoraSettings> {
  const out: Record<string, unknown> = { ...LORA_DEFAULTS };
  for (const f of FIELDS) out[f.key] = s[f.key] ?? f.peftDefault ?? LORA_DEFAULTS[f.key];
  return out as unknown as Required<LoraSettings>;
}

export interface LoraConflict {
  readonly flag: string;
  readonly given: unknown;
  readonly field: string;
  readonly saved: unknown;
}

/** The first flag given that disagrees with a resumed adapter's spec, or undefined. */
export function loraConflict(given: Partial<LoraSettings>, saved: LoraSettings): LoraConflict | undefined {
  const whole = completeLoraSettings(saved);
  for (const f of FIELDS) {
    const g = given[f.key];
    if (f.flag === undefined || g === undefined) continue;
    const same = f.same ?? ((a, b) => a === b);
    if (!same(g, whole[f.key])) return { flag: f.flag, given: g, field: f.peft, saved: whole[f.key] };
  }
  return undefined;
}

/** The spec's fields by their adapter_config.json names (absent ones left out). */
export function loraSettingsJson(s: LoraSettings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) {
    const v = s[f.key];
    if (v !== undefined) out[f.peft] = Array.isArray(v) ? [...v] : v;
  }
  return out;
}

/** The factor of B·A: alpha/r, or alpha/√r with rsLoRA. */
export function loraScaling(s: LoraSettings): number {
  return s.useRslora ? s.loraAlpha / Math.sqrt(s.r) : s.loraAlpha / s.r;
}

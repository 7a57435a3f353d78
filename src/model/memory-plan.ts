// How much memory one process needs to load a model and run a LoRA step on it, from config.json
// alone (no weights read): the frozen weights (f32, or int8 + per-row scales with load_8bit), the tied
// embedding, the LoRA state, what train-step.ts keeps per layer for the backward (or only the block
// inputs under gradient checkpointing), one block's working set and the runtime. Pure arithmetic; what
// a block keeps besides its Linears' inputs is the family's (ModelConfig.arch).
import type { ModelConfig } from '../checkpoint/architecture.ts';
import type { LoraSettings } from '../checkpoint/lora-spec.ts';
import { loraTargets } from '../checkpoint/lora-targets.ts';
import { loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import type { ComputeLayout } from './backend.ts';

export const GIB = 2 ** 30;
const F32 = 4;
/** Largest rows of the fused cross-entropy processed together (ROW_CHUNK in loss.ts). */
const LOSS_ROW_CHUNK = 256;
/** Node + TensorFlow runtime (code, allocator pools, V8 heap) beside the tensors: an allowance, not
 * measured on its own; checked only within the whole (MPT-7B with --load_8bit: peak RSS 11.8 GiB
 * against 11.6 planned, docs/backends.md). */
const RUNTIME_BYTES = 0.75 * GIB;

export interface MemorySettings {
  readonly layout: ComputeLayout;
  readonly load8bit: boolean;
  readonly gradientCheckpointing: boolean;
  /** Rows per forward/backward; 0 where the micro-batch shape is not known yet (activations are
   * then not counted). */
  readonly microBatchSize: number;
  /** Tokens per row (cutoff_len, capped by max_seq_len). */
  readonly seqLen: number;
  readonly lora: LoraSettings;
  /** false for eval: a forward only, nothing kept for a backward, no optimizer state. */
  readonly training: boolean;
}

/** Bytes by part; `total` is what the process must be able to hold at its peak. */
export interface MemoryPlan {
  readonly parameters: number;
  readonly frozenLinears: number;
  readonly embedding: number;
  readonly loraState: number;
  readonly activations: number;
  readonly working: number;
  readonly runtime: number;
  /** What lives in JavaScript memory: wte, int8 weights (load_8bit) and their dequantized copies,
   * the LoRA optimizer state, the runtime. */
  readonly host: number;
  /** What lives in the backend's tensors: float32 weights or one block's dequantized ones, the vocab
   * chunks, LoRA factors, activations, the working set. On a CPU backend both are the same RAM. */
  readonly device: number;
  readonly total: number;
}

/** Float32 values train-step.ts keeps for one block's backward (the family's block state, plus each
 * adapted Linear's input and LoRA intermediates). */
export function savedValuesPerBlock(
  config: ModelConfig,
  s: MemorySettings,
  loraModules: Set<string>,
): number {
  const n = s.microBatchSize * s.seqLen;
  const r = s.lora.r;
  const dropout = s.lora.loraDropout > 0;
  const variant = loraVariantOf(s.lora);
  let v = config.arch.blockSavedValues(s.microBatchSize, s.seqLen);
  for (const l of config.arch.linears) {
    if (!loraModules.has(l.name)) continue;
    v += n * l.inFeatures + n * r; // the layer input and u = x·Aᵀ
    if (dropout) v += 2 * n * l.inFeatures; // drop(x) and the keep mask
    v += n * variant.savedValuesPerToken(l); // the variant's own (DoRA: z [N, out])
  }
  return v;
}

/** Peak float32 values alive inside one block's forward or backward beyond what is saved: the
 * family's, plus the LoRA variant's (DoRA: two [N, out] of the widest linear). */
function workingValuesPerBlock(config: ModelConfig, s: MemorySettings): number {
  const n = s.microBatchSize * s.seqLen;
  const widest = Math.max(...config.arch.linears.map((l) => l.outFeatures));
  const variantValues = n * loraVariantOf(s.lora).workingValuesPerToken(widest);
  return config.arch.blockWorkingValues(s.microBatchSize, s.seqLen) + variantValues;
}

export function planMemory(config: ModelConfig, s: MemorySettings): MemoryPlan {
  const d = config.dModel;
  const copies = s.layout === 'plain-2d' ? 2 : 1; // plain-2d keeps W and Wᵀ
  let blockLinearValues = 0;
  let blockRows = 0;
  for (const l of config.arch.linears) {
    blockLinearValues += l.inFeatures * l.outFeatures;
    blockRows += l.outFeatures;
  }
  const linearValues = blockLinearValues * config.nLayers;
  const linearRows = blockRows * config.nLayers;
  const normValues = config.arch.normValues;
  const embValues = config.arch.embeddingValues;
  const parameters = linearValues + normValues + embValues;

  // load_8bit: int8 values + one f32 scale per row on the host; each block's linears are
  // converted to float32 (a host array and a device tensor per copy, plus the scales on the device)
  // for the span of its forward or backward.
  const linearsHost = s.load8bit ? linearValues + linearRows * F32 + copies * blockLinearValues * F32 : 0;
  const linearsDevice = s.load8bit
    ? (blockLinearValues * copies + blockRows) * F32
    : linearValues * copies * F32;
  const frozenLinears = linearsHost + linearsDevice;
  // wte stays on the host (embedding and label rows are gathered there) and is uploaded as the vocab
  // chunks of the output layer (plus their transposes in plain-2d).
  const embeddingDevice = copies * embValues * F32 + normValues * F32;
  const embedding = embValues * F32 + embeddingDevice;

  const targets = loraTargets(config, s.lora);
  const variant = loraVariantOf(s.lora);
  const pairs = targets.reduce((a, t) => a + s.lora.r * (t.inFeatures + t.outFeatures), 0);
  const extras = targets
    .flatMap((t) => variant.extraTensors(t))
    .reduce((a, x) => a + x.shape.reduce((p, k) => p * k, 1), 0);
  const trainable = pairs + extras;
  // Host: replica weights, AdamW m and v, the step's accumulated gradient, one micro-batch's flat
  // gradient and its per-tensor map; device: A, Aᵀ, B, Bᵀ and the variant's per-step state (DoRA's c
  // and 1/n). DoRA's norm, computed in 16 MB row blocks before each step's forward, never coincides
  // with the activations.
  const loraHost = (s.training ? 6 : 0) * trainable * F32;
  const loraDevice = 2 * pairs + targets.reduce((a, t) => a + variant.deviceValues(t), 0);
  const loraState = loraHost + loraDevice * F32;

  const lowest = Math.min(...targets.map((t) => t.layer));
  const trainedLayers = config.nLayers - lowest;
  const n = s.microBatchSize * s.seqLen;
  const modulesOf = (layer: number) => new Set(targets.filter((t) => t.layer === layer).map((t) => t.module));
  const perBlock = savedValuesPerBlock(config, s, modulesOf(config.nLayers - 1));
  // Kept for the backward: every trained block's saved state, or (checkpointing) every trained
  // block's input plus one block's saved state while it is recomputed.
  const kept = s.gradientCheckpointing ? trainedLayers * n * d + perBlock : trainedLayers * perBlock;
  const activationValues = s.training ? kept : 0;
  // + the residual stream and dL/dh, and the attention bias of the step.
  const maskValues = config.arch.attentionBiasValues(s.microBatchSize, s.seqLen);
  const activations = (activationValues + 2 * n * d + (s.microBatchSize > 0 ? maskValues : 0)) * F32;

  const lossRows = Math.min(n, LOSS_ROW_CHUNK);
  const lossValues = 4 * lossRows * config.vocabSize + 3 * n * d;
  const working = Math.max(workingValuesPerBlock(config, s), lossValues) * F32;

  const total = frozenLinears + embedding + loraState + activations + working + RUNTIME_BYTES;
  const host = linearsHost + embValues * F32 + loraHost + RUNTIME_BYTES;
  return {
    parameters,
    frozenLinears,
    embedding,
    loraState,
    activations,
    working,
    runtime: RUNTIME_BYTES,
    host,
    device: total - host,
    total,
  };
}

export const gib = (bytes: number): string => (bytes / GIB).toFixed(1);

/** A change of flags that needs less memory, and the settings it gives. */
export interface FitChange {
  readonly flags: string;
  readonly settings: MemorySettings;
}

/** Settings that need less memory than `s`, fewest changes first: --load_8bit,
 * --gradient_checkpointing, both, then smaller --micro_batch_size and --cutoff_len with both. */
export function smallerSettings(s: MemorySettings): FitChange[] {
  const out: FitChange[] = [];
  const add = (flags: string[], next: Partial<MemorySettings>) => {
    if (flags.length > 0) out.push({ flags: flags.join(' '), settings: { ...s, ...next } });
  };
  const q = s.load8bit ? [] : ['--load_8bit'];
  const c = s.gradientCheckpointing || !s.training ? [] : ['--gradient_checkpointing'];
  add(q, { load8bit: true });
  add(c, { gradientCheckpointing: true });
  if (q.length > 0 && c.length > 0) add([...q, ...c], { load8bit: true, gradientCheckpointing: true });
  const both = { load8bit: true, gradientCheckpointing: s.training };
  for (let mb = Math.floor(s.microBatchSize / 2); mb >= 1; mb = Math.floor(mb / 2)) {
    add([...q, ...c, `--micro_batch_size ${mb}`], { ...both, microBatchSize: mb });
  }
  for (let t = Math.floor(s.seqLen / 2); t >= 128; t = Math.floor(t / 2)) {
    const mb = s.microBatchSize > 1 ? ['--micro_batch_size 1'] : [];
    add([...q, ...c, ...mb, `--cutoff_len ${t}`], { ...both, microBatchSize: 1, seqLen: t });
  }
  return out;
}

/** Memory to plan against: `pool` says which part of the plan must fit (`total` where tensors live in
 * RAM, as on CPU backends; `device` and `host` separately on a GPU); `where` says what was measured,
 * e.g. "available on this machine (MemAvailable)". */
export interface MemoryBudget {
  readonly bytes: number;
  readonly pool: 'total' | 'device' | 'host';
  readonly where: string;
}

/** Null when the plan fits the budget, else one line with the numbers and the flags that would make
 * it fit (or the smallest it can get). */
export function memoryVerdict(config: ModelConfig, s: MemorySettings, budget: MemoryBudget): string | null {
  const need = (p: MemoryPlan) => p[budget.pool];
  const plan = planMemory(config, s);
  if (need(plan) <= budget.bytes) return null;
  const shape = `${config.arch.displayName} with ${(plan.parameters / 1e9).toFixed(2)}B parameters (d_model ${config.dModel}, ${config.nLayers} layers)`;
  const batch =
    s.microBatchSize === 0
      ? 'before any micro-batch (activations not counted)'
      : `micro_batch_size ${s.microBatchSize} x ${s.seqLen} tokens`;
  const how = `${s.load8bit ? 'int8 (--load_8bit)' : 'float32'}, ${batch}, gradient checkpointing ${s.gradientCheckpointing ? 'on' : 'off'}`;
  const parts = `frozen linears ${gib(plan.frozenLinears)}, embedding ${gib(plan.embedding)}, LoRA state ${gib(plan.loraState)}, activations ${gib(plan.activations)}, working set ${gib(plan.working)}, runtime ${gib(plan.runtime)}`;
  const of = budget.pool === 'total' ? '' : ` of ${budget.pool} memory`;
  const head = `not enough memory: ${shape} needs ${gib(need(plan))} GiB${of} at ${how} (${parts}) but ${gib(budget.bytes)} GiB is ${budget.where}`;
  let smallest: { change: FitChange; bytes: number } | null = null;
  for (const change of smallerSettings(s)) {
    const bytes = need(planMemory(config, change.settings));
    if (bytes <= budget.bytes) return `${head}; ${change.flags} would fit it in ${gib(bytes)} GiB`;
    if (smallest === null || bytes < smallest.bytes) smallest = { change, bytes };
  }
  const least = smallest === null ? '' : ` (${smallest.change.flags} still needs ${gib(smallest.bytes)} GiB)`;
  return `${head}; no flag makes it fit${least}: use a machine with more memory`;
}

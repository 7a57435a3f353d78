// `OUTPUT_DIR/checkpoint-<step>/` (DESIGN.md §5): the PEFT adapter, the AdamW moments and the
// trainer state — enough to resume exactly, since the data plan rebuilds any step from (data, flags,
// seed). Written to a temporary name, fsynced and renamed, so a crash never leaves half a checkpoint.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type LoraConfig, readPeftAdapter, writePeftAdapter } from '../checkpoint/peft-adapter.ts';
import { readingFile } from '../formats/file-error.ts';
import type { HostTensor } from '../formats/host-tensor.ts';
import { SafetensorsReader, writeSafetensors } from '../formats/safetensors.ts';
import { writeDirAtomic } from './atomic-write.ts';
import { checkpointName } from './checkpoint-dirs.ts';
import { flatten, type ParamLayout, unflatten } from './param-layout.ts';
import type { AdapterReplica } from './replica.ts';

export const OPTIMIZER_FILE = 'optimizer.safetensors';

import type { PlanFlags } from '../data/fingerprint.ts';

export const TRAINER_STATE_FILE = 'trainer_state.json';

export interface LogEntry {
  readonly step: number;
  readonly [key: string]: number | string;
}

/** trainer_state.json: the HF Trainer's field names where they exist, lora-mpt's own under `lora_mpt`. */
export interface TrainerState {
  readonly global_step: number;
  readonly epoch: number;
  readonly max_steps: number;
  readonly best_metric: number | null;
  readonly best_model_checkpoint: string | null;
  readonly log_history: readonly LogEntry[];
  readonly lora_mpt: {
    readonly run_id: string;
    readonly plan_fingerprint: string;
    readonly dataset_fingerprint: string;
    /** The plan's options (absent in checkpoints of older lora-mpt versions). */
    readonly plan_flags?: PlanFlags;
    readonly seed: number;
    /** AdamW updates applied (equals global_step; kept for the optimizer file's sake). */
    readonly optimizer_steps: number;
    /** sha256 (32 hex) of the weights, then exp_avg, then exp_avg_sq, as float32 bytes in layout order:
     * a file changed or damaged after the save fails the load (absent in older checkpoints). */
    readonly state_checksum?: string;
  };
}

/** The digest a checkpoint records of the state it holds. */
export function stateChecksum(params: Float32Array, expAvg: Float32Array, expAvgSq: Float32Array): string {
  const h = createHash('sha256');
  for (const v of [params, expAvg, expAvgSq]) h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return h.digest('hex').slice(0, 32);
}

/** The first non-finite value of `flat` (or, for second moments, a negative one), named by tensor. */
function badValue(layout: ParamLayout, flat: Float32Array, nonNegative: boolean): string | null {
  for (let i = 0; i < flat.length; i++) {
    const x = flat[i] as number;
    if (Number.isFinite(x) && !(nonNegative && x < 0)) continue;
    const spec = layout.specs.find((s) => {
      const at = layout.offsets.get(s.name) as number;
      return i >= at && i < at + s.shape.reduce((a, b) => a * b, 1);
    });
    const at = spec ? i - (layout.offsets.get(spec.name) as number) : i;
    return `${spec?.name ?? 'a tensor'} holds ${x} at element ${at}`;
  }
  return null;
}

function tensorsOf(layout: ParamLayout, flat: Float32Array, prefix = ''): HostTensor[] {
  return [...unflatten(layout, flat)].map(([name, data]) => ({
    name: `${prefix}${name}`,
    shape: layout.specs.find((s) => s.name === name)!.shape,
    data,
  }));
}

/** The adapter as PEFT saves it, from the replica's flat weights. */
export function adapterTensors(layout: ParamLayout, params: Float32Array): Map<string, HostTensor> {
  return new Map(tensorsOf(layout, params).map((t) => [t.name, t]));
}

export async function saveTrainingCheckpoint(
  outputDir: string,
  replica: AdapterReplica,
  config: LoraConfig,
  state: TrainerState,
): Promise<string> {
  const dir = join(outputDir, checkpointName(state.global_step));
  const { layout } = replica;
  const s = replica.state;
  await writeDirAtomic(dir, async (tmp) => {
    await writePeftAdapter(tmp, { config, tensors: adapterTensors(layout, s.params) });
    await writeSafetensors(
      join(tmp, OPTIMIZER_FILE),
      [...tensorsOf(layout, s.expAvg, 'exp_avg.'), ...tensorsOf(layout, s.expAvgSq, 'exp_avg_sq.')],
      { format: 'lora-mpt', optimizer: 'adamw', optimizer_steps: String(s.step) },
    );
    const stamped: TrainerState = {
      ...state,
      lora_mpt: { ...state.lora_mpt, state_checksum: stateChecksum(s.params, s.expAvg, s.expAvgSq) },
    };
    await writeFile(join(tmp, TRAINER_STATE_FILE), `${JSON.stringify(stamped, null, 2)}\n`);
  });
  return dir;
}

export interface LoadedCheckpoint {
  readonly state: TrainerState;
  readonly params: Float32Array;
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
}

/** Reads a checkpoint written by saveTrainingCheckpoint; names every missing or mismatched piece, and
 * refuses one whose values are not finite (second moments: negative) or do not match its checksum. */
export async function loadTrainingCheckpoint(dir: string, layout: ParamLayout): Promise<LoadedCheckpoint> {
  const statePath = join(dir, TRAINER_STATE_FILE);
  const state = await readingFile(
    statePath,
    async () => JSON.parse(await readFile(statePath, 'utf8')) as TrainerState,
  );
  const lm = state?.lora_mpt;
  if (
    typeof state !== 'object' ||
    state === null ||
    typeof state.global_step !== 'number' ||
    typeof lm !== 'object' ||
    lm === null ||
    typeof lm.plan_fingerprint !== 'string' ||
    typeof lm.optimizer_steps !== 'number'
  ) {
    throw new Error(
      `${statePath} is not a lora-mpt trainer state (global_step, lora_mpt.plan_fingerprint, lora_mpt.optimizer_steps)`,
    );
  }
  const adapter = await readPeftAdapter(dir);
  const params = flatten(layout, new Map([...adapter.tensors].map(([k, t]) => [k, t.data])));
  const reader = await SafetensorsReader.open(join(dir, OPTIMIZER_FILE));
  try {
    const read = async (prefix: string) => {
      const m = new Map<string, Float32Array>();
      for (const spec of layout.specs)
        m.set(spec.name, (await reader.read(reader.entry(`${prefix}${spec.name}`))).data);
      return flatten(layout, m);
    };
    const loaded = { state, params, expAvg: await read('exp_avg.'), expAvgSq: await read('exp_avg_sq.') };
    const checks: [string, Float32Array, boolean][] = [
      [join(dir, 'adapter_model.safetensors'), loaded.params, false],
      [`${join(dir, OPTIMIZER_FILE)} (exp_avg)`, loaded.expAvg, false],
      [`${join(dir, OPTIMIZER_FILE)} (exp_avg_sq)`, loaded.expAvgSq, true],
    ];
    for (const [file, flat, nonNegative] of checks) {
      const bad = badValue(layout, flat, nonNegative);
      if (bad !== null) throw new Error(`${file}: ${bad}; this checkpoint cannot be resumed from`);
    }
    const recorded = lm.state_checksum;
    if (recorded !== undefined) {
      const actual = stateChecksum(loaded.params, loaded.expAvg, loaded.expAvgSq);
      if (actual !== recorded) {
        throw new Error(
          `${dir}: its tensors do not match the checksum ${statePath} records (${recorded}, the files hold ${actual}): a file was changed or damaged after the save`,
        );
      }
    }
    return loaded;
  } finally {
    await reader.close();
  }
}

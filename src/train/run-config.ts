// The run configuration a coordinator sends every worker in its Welcome (and that finetune uses
// directly): what a replica must agree on to compute the same step. Built once from flags in
// src/cli; `parseRunConfig` validates it at the worker's edge.
import { type AllReduceAlgorithm, isAllReduceAlgorithm, unknownAlgorithm } from '../collective/index.ts';

export interface RunConfig {
  readonly runId: string;
  /** Directory or hub id of the base model; each worker resolves it on its own disk. */
  readonly baseModel: string;
  readonly loraR: number;
  readonly loraAlpha: number;
  readonly loraDropout: number;
  readonly loraTargetModules: readonly string[];
  /** PEFT's use_rslora: the LoRA update scaled by alpha/sqrt(r), not alpha/r. */
  readonly useRslora: boolean;
  /** PEFT's use_dora: every LoRA Linear also trains a magnitude per output row. */
  readonly useDora: boolean;
  /** PEFT's layers_to_transform: the blocks with LoRA; null = every block. */
  readonly layersToTransform: readonly number[] | null;
  readonly seed: number;
  readonly maxGradNorm: number;
  readonly gradientCheckpointing: boolean;
  readonly load8bit: boolean;
  readonly allReduceAlgorithm: AllReduceAlgorithm;
  readonly allReduceTimeoutMs: number;
}

function need<T>(o: Record<string, unknown>, key: string, kind: string, ok: (v: unknown) => boolean): T {
  const v = o[key];
  if (!ok(v)) throw new Error(`run config: "${key}" must be ${kind}, got ${JSON.stringify(v)}`);
  return v as T;
}

const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown) => typeof v === 'string';
const isBool = (v: unknown) => typeof v === 'boolean';

export function parseRunConfig(json: string): RunConfig {
  const o = JSON.parse(json) as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw new Error('run config is not a JSON object');
  if (!isAllReduceAlgorithm(o.allReduceAlgorithm))
    throw new Error(unknownAlgorithm('run config: "allReduceAlgorithm"', o.allReduceAlgorithm));
  return {
    runId: need(o, 'runId', 'a string', isStr),
    baseModel: need(o, 'baseModel', 'a string', isStr),
    loraR: need(o, 'loraR', 'a number', isNum),
    loraAlpha: need(o, 'loraAlpha', 'a number', isNum),
    loraDropout: need(o, 'loraDropout', 'a number', isNum),
    loraTargetModules: need(
      o,
      'loraTargetModules',
      'a list of strings',
      (v) => Array.isArray(v) && v.every(isStr),
    ),
    useRslora: need(o, 'useRslora', 'true or false', isBool),
    useDora: need(o, 'useDora', 'true or false', isBool),
    layersToTransform: need(
      o,
      'layersToTransform',
      'null or a list of block numbers',
      (v) => v === null || (Array.isArray(v) && v.every((n) => Number.isSafeInteger(n) && n >= 0)),
    ),
    seed: need(o, 'seed', 'a number', isNum),
    maxGradNorm: need(o, 'maxGradNorm', 'a number', isNum),
    gradientCheckpointing: need(o, 'gradientCheckpointing', 'true or false', isBool),
    load8bit: need(o, 'load8bit', 'true or false', isBool),
    allReduceAlgorithm: o.allReduceAlgorithm,
    allReduceTimeoutMs: need(o, 'allReduceTimeoutMs', 'a number', isNum),
  };
}

// The run configuration a coordinator sends every worker in its Welcome (and that finetune uses
// directly): what a replica must agree on to compute the same step. Built once from flags in
// src/cli; `parseRunConfig` validates it at the worker's edge.

import { type LoraSettings, parseLoraSettings } from '../checkpoint/lora-spec.ts';
import {
  type AllReduceAlgorithm,
  GRADIENT_ENCODINGS,
  type GradientEncoding,
  isAllReduceAlgorithm,
  isGradientEncoding,
  unknownAlgorithm,
} from '../collective/index.ts';

export interface RunConfig {
  readonly runId: string;
  /** Directory or hub id of the base model; each worker resolves it on its own disk. */
  readonly baseModel: string;
  /** The LoRA spec, as the training settings hold it (src/checkpoint/lora-spec.ts). */
  readonly lora: LoraSettings;
  readonly seed: number;
  readonly maxGradNorm: number;
  readonly gradientCheckpointing: boolean;
  readonly load8bit: boolean;
  readonly allReduceAlgorithm: AllReduceAlgorithm;
  /** How gradients travel between workers: 'f32', or 'bf16' (half the bytes, rounded). */
  readonly allReduceEncoding: GradientEncoding;
  readonly allReduceTimeoutMs: number;
  /**
   * Largest all-reduce frame in bytes (RoundOptions.maxPayload): the same for every participant, or
   * their chunking differs. 0: each participant's NATS server's max_payload.
   */
  readonly allReduceFrameBytes: number;
}

function need<T>(o: Record<string, unknown>, key: string, kind: string, ok: (v: unknown) => boolean): T {
  const v = o[key];
  if (!ok(v)) throw new Error(`run config: "${key}" must be ${kind}, got ${JSON.stringify(v)}`);
  return v as T;
}

const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown) => typeof v === 'string';
const isBool = (v: unknown) => typeof v === 'boolean';
const isByteCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

function encodingOf(v: unknown): GradientEncoding {
  if (!isGradientEncoding(v)) {
    throw new Error(
      `run config: "allReduceEncoding" must be one of ${GRADIENT_ENCODINGS.join(', ')}, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

export function parseRunConfig(json: string): RunConfig {
  const o = JSON.parse(json) as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw new Error('run config is not a JSON object');
  if (!isAllReduceAlgorithm(o.allReduceAlgorithm))
    throw new Error(unknownAlgorithm('run config: "allReduceAlgorithm"', o.allReduceAlgorithm));
  return {
    runId: need(o, 'runId', 'a string', isStr),
    baseModel: need(o, 'baseModel', 'a string', isStr),
    lora: parseLoraSettings(o.lora, 'run config: "lora"', 'wire'),
    seed: need(o, 'seed', 'a number', isNum),
    maxGradNorm: need(o, 'maxGradNorm', 'a number', isNum),
    gradientCheckpointing: need(o, 'gradientCheckpointing', 'true or false', isBool),
    load8bit: need(o, 'load8bit', 'true or false', isBool),
    allReduceAlgorithm: o.allReduceAlgorithm,
    // Absent from a coordinator that predates it, which sends float32.
    allReduceEncoding: o.allReduceEncoding === undefined ? 'f32' : encodingOf(o.allReduceEncoding),
    allReduceTimeoutMs: need(o, 'allReduceTimeoutMs', 'a number', isNum),
    // Absent from a coordinator that predates it, whose workers all used their server's max_payload.
    allReduceFrameBytes:
      o.allReduceFrameBytes === undefined
        ? 0
        : need(o, 'allReduceFrameBytes', 'a whole number of bytes >= 0', isByteCount),
  };
}

// LoRA dropout masks that depend only on (run seed, micro-batch id, layer, module, element index),
// never on the backend, the worker or the order of work: a micro-batch computed anywhere, or
// recomputed under gradient checkpointing, drops exactly the same inputs.
//
// Derivation: stream = mix(mix(mix(seed) ^ lo32(id) ^ mix(hi32(id))) ^ (layer·4 + module)), and element k
// is kept when mix(stream ^ mix(k + 0x9e3779b9)) / 2^32 >= p; kept values are scaled by 1/(1-p)
// (nn.Dropout's convention). mix is the "lowbias32" integer hash.
import { MPT_LINEARS, type MptLinearName } from '../checkpoint/lora-targets.ts';

export interface DropoutSeed {
  /** The run's seed (the trainer's `seed`). */
  readonly seed: number;
  /** The global id of the micro-batch (stable across workers and retries). */
  readonly microBatch: number;
}

function mix(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

function streamKey(s: DropoutSeed, layer: number, module: MptLinearName): number {
  const lo = s.microBatch >>> 0;
  const hi = Math.floor(s.microBatch / 4294967296) >>> 0;
  const moduleIndex = MPT_LINEARS.indexOf(module);
  return mix(mix(mix(s.seed) ^ lo ^ mix(hi)) ^ (layer * 4 + moduleIndex));
}

/** The scaled keep mask (0 or 1/(1-p)) for `count` input elements of one LoRA module. */
export function dropoutMask(
  s: DropoutSeed,
  layer: number,
  module: MptLinearName,
  p: number,
  count: number,
): Float32Array {
  if (!(p > 0 && p < 1)) throw new Error(`dropoutMask: p must be in (0, 1), got ${p}`);
  const key = streamKey(s, layer, module);
  const threshold = p * 4294967296;
  const keepValue = 1 / (1 - p);
  const out = new Float32Array(count);
  for (let k = 0; k < count; k++) {
    out[k] = mix(key ^ mix(k + 0x9e3779b9)) >= threshold ? keepValue : 0;
  }
  return out;
}

// LoRA dropout masks that depend only on (run seed, micro-batch id, layer, module, element index),
// never on the backend, the worker or the order of work: a micro-batch computed anywhere, or
// recomputed under gradient checkpointing, drops exactly the same inputs.
//
// Derivation: stream = mix(mix(mix(seed) ^ lo32(id) ^ mix(hi32(id))) ^ (layer·L + module)), with L the
// Linears per block (4 in MPT) and module the Linear's index in its block, and element k
// is kept when mix(stream ^ mix(k + 0x9e3779b9)) / 2^32 >= p; kept values are scaled by 1/(1-p)
// (nn.Dropout's convention). mix is the "lowbias32" integer hash.

export interface DropoutSeed {
  /** The run's seed (the trainer's `seed`). */
  readonly seed: number;
  /** The global id of the micro-batch (stable across workers and retries). */
  readonly microBatch: number;
}

/** Which LoRA input a mask is for: block `layer`, Linear `index` of the block's `perBlock`. */
export interface DropoutSite {
  readonly layer: number;
  readonly index: number;
  readonly perBlock: number;
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

function streamKey(s: DropoutSeed, site: DropoutSite): number {
  if (!(site.index >= 0 && site.index < site.perBlock)) {
    throw new Error(`dropoutMask: Linear index ${site.index} is outside the block's ${site.perBlock}`);
  }
  const lo = s.microBatch >>> 0;
  const hi = Math.floor(s.microBatch / 4294967296) >>> 0;
  return mix(mix(mix(s.seed) ^ lo ^ mix(hi)) ^ (site.layer * site.perBlock + site.index));
}

/** The scaled keep mask (0 or 1/(1-p)) for `count` input elements of one LoRA module. */
export function dropoutMask(s: DropoutSeed, site: DropoutSite, p: number, count: number): Float32Array {
  if (!(p > 0 && p < 1)) throw new Error(`dropoutMask: p must be in (0, 1), got ${p}`);
  const key = streamKey(s, site);
  const threshold = p * 4294967296;
  const keepValue = 1 / (1 - p);
  const out = new Float32Array(count);
  for (let k = 0; k < count; k++) {
    out[k] = mix(key ^ mix(k + 0x9e3779b9)) >= threshold ? keepValue : 0;
  }
  return out;
}

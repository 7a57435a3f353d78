// The keys and values every attention layer has seen so far, so that decoding one more token runs
// the model over that one position only: per layer K and V as [rows·H, T, hd] device tensors (rows =
// sequences decoded together, e.g. beams; H = the heads cached, a grouped-query model's key/value
// heads). The cache owns its tensors; dispose() frees them.
import * as tf from '@tensorflow/tfjs-core';

interface LayerKv {
  k: tf.Tensor3D;
  v: tf.Tensor3D;
}

export class KvCache {
  private layers: (LayerKv | null)[];
  private rowCount = 0;

  constructor(
    readonly nLayers: number,
    readonly nHeads: number,
  ) {
    this.layers = Array.from({ length: nLayers }, () => null);
  }

  /** Positions cached so far (the same for every layer once a forward has gone through them all). */
  get length(): number {
    return this.layers[this.nLayers - 1]?.k.shape[1] ?? 0;
  }

  /** Sequences held (0 before the first forward). */
  get rows(): number {
    return this.rowCount;
  }

  /** Layer `l`'s K and V, or null before anything was appended. Owned by the cache. */
  layer(l: number): { readonly k: tf.Tensor3D; readonly v: tf.Tensor3D } | null {
    return this.layers[l] ?? null;
  }

  /** Appends new keys and values [rows·H, q, hd] to layer `l`; takes ownership of `k` and `v` (which
   * must survive any enclosing tf.tidy: tf.keep them). */
  append(l: number, k: tf.Tensor3D, v: tf.Tensor3D): void {
    const old = this.layers[l];
    if (old === null || old === undefined) {
      this.layers[l] = { k, v };
      this.rowCount = k.shape[0] / this.nHeads;
      return;
    }
    if (old.k.shape[0] !== k.shape[0]) {
      throw new Error(`KvCache: layer ${l} holds ${old.k.shape[0]} head rows, got ${k.shape[0]}`);
    }
    // keep: a caller's tf.tidy must not free what the cache now owns.
    this.layers[l] = { k: tf.keep(tf.concat([old.k, k], 1)), v: tf.keep(tf.concat([old.v, v], 1)) };
    tf.dispose([old.k, old.v, k, v]);
  }

  /**
   * Keeps, as row i, the old row `from[i]` (a beam search's survivors; repeating a row duplicates it,
   * e.g. one prompt expanded to every beam). The number of rows becomes from.length.
   */
  select(from: Int32Array): void {
    const h = this.nHeads;
    for (const r of from) {
      if (!(r >= 0 && r < this.rowCount)) throw new Error(`KvCache.select: row ${r} of ${this.rowCount}`);
    }
    // Runs of consecutive source rows become one contiguous slice each, and the slices one concat:
    // both are plain block copies on every backend, where a gather over [rows·H, T, hd] was the
    // slowest kernel of a beam-search step (52 ms of 63 on wasm, 11 of 24 on tensorflow).
    const runs: { start: number; count: number }[] = [];
    for (const r of from) {
      const last = runs[runs.length - 1];
      if (last !== undefined && last.start + last.count === r) last.count += 1;
      else runs.push({ start: r, count: 1 });
    }
    const pick = (t: tf.Tensor3D): tf.Tensor3D => {
      const parts = runs.map((run) => tf.slice(t, [run.start * h, 0, 0], [run.count * h, -1, -1]));
      if (parts.length === 1) return parts[0] as tf.Tensor3D;
      const out = tf.concat(parts, 0);
      tf.dispose(parts);
      return out;
    };
    this.layers = this.layers.map((kv) => {
      if (kv === null) return null;
      const next = { k: tf.keep(pick(kv.k)), v: tf.keep(pick(kv.v)) };
      tf.dispose([kv.k, kv.v]);
      return next;
    });
    this.rowCount = from.length;
  }

  dispose(): void {
    for (const kv of this.layers) if (kv !== null) tf.dispose([kv.k, kv.v]);
    this.layers = this.layers.map(() => null);
    this.rowCount = 0;
  }
}

// The additive attention bias of one micro-batch (ALiBi + causal + key padding) as device tensors:
// the per-head [T,T] ALiBi+causal part is built once per sequence length and cached; padded rows get
// their own copies for the step. Padding and causal masks combine by minimum, so a masked score is
// exactly MASKED_SCORE once, like HF's masked_fill.
import * as tf from '@tensorflow/tfjs-core';
import { alibiSlopes, causalAlibiBias, keyPaddingBias } from './alibi.ts';
import type { ComputeLayout } from './backend.ts';

interface BaseBias {
  /** [T, T] per head (plain-2d layout). */
  readonly perHead: readonly tf.Tensor2D[];
  /** [1, H, T, T] (batched layout). */
  readonly stacked: tf.Tensor4D | null;
}

const CACHED_LENGTHS = 4;

/** Per-model cache of the ALiBi+causal bias by sequence length. dispose() frees it. */
export class AttentionBiasCache {
  private readonly slopes: readonly number[] | null;
  private readonly byLength = new Map<number, BaseBias>();

  constructor(
    readonly layout: ComputeLayout,
    readonly nHeads: number,
    alibi: boolean,
    alibiBiasMax: number,
  ) {
    this.slopes = alibi ? alibiSlopes(nHeads, alibiBiasMax) : null;
  }

  base(seqLen: number): BaseBias {
    const hit = this.byLength.get(seqLen);
    if (hit !== undefined) return hit;
    if (this.byLength.size >= CACHED_LENGTHS) {
      const [oldest, bias] = this.byLength.entries().next().value as [number, BaseBias];
      this.byLength.delete(oldest);
      disposeBase(bias);
    }
    const host = causalAlibiBias(this.slopes, this.nHeads, seqLen);
    const tt = seqLen * seqLen;
    const bias: BaseBias =
      this.layout === 'plain-2d'
        ? {
            perHead: Array.from({ length: this.nHeads }, (_, h) =>
              tf.tensor2d(host.subarray(h * tt, (h + 1) * tt), [seqLen, seqLen]),
            ),
            stacked: null,
          }
        : { perHead: [], stacked: tf.tensor4d(host, [1, this.nHeads, seqLen, seqLen]) };
    this.byLength.set(seqLen, bias);
    return bias;
  }

  dispose(): void {
    for (const b of this.byLength.values()) disposeBase(b);
    this.byLength.clear();
  }
}

function disposeBase(b: BaseBias): void {
  for (const t of b.perHead) t.dispose();
  b.stacked?.dispose();
}

/** The bias of one micro-batch. Owns only the tensors it created; dispose() after the step. */
export class AttentionMask {
  private readonly owned: tf.Tensor[] = [];
  private readonly pairs: (readonly tf.Tensor2D[])[] = [];
  /** [B or 1, H, T, T] in the batched layout; null in plain-2d. */
  readonly batched: tf.Tensor4D | null = null;

  constructor(cache: AttentionBiasCache, rows: number, seqLen: number, attentionMask: Int32Array | null) {
    const base = cache.base(seqLen);
    const pad = keyPaddingBias(attentionMask, rows, seqLen);
    if (cache.layout === 'batched') {
      if (pad === null) this.batched = base.stacked;
      else {
        const padT = tf.tensor4d(pad, [rows, 1, 1, seqLen]);
        const combined: tf.Tensor4D = tf.minimum(base.stacked as tf.Tensor4D, padT);
        padT.dispose();
        this.batched = combined;
        this.owned.push(combined);
      }
      return;
    }
    for (let b = 0; b < rows; b++) {
      const row = pad?.subarray(b * seqLen, (b + 1) * seqLen);
      if (row === undefined || row.every((v) => v === 0)) {
        this.pairs.push(base.perHead);
        continue;
      }
      const padRow = tf.tensor2d(row, [1, seqLen]);
      const mine = base.perHead.map((bh): tf.Tensor2D => tf.minimum(bh, padRow));
      padRow.dispose();
      this.owned.push(...mine);
      this.pairs.push(mine);
    }
  }

  /** [T, T] bias of (row b, head h) in the plain-2d layout. Owned by this mask or the cache. */
  pair(b: number, h: number): tf.Tensor2D {
    const t = this.pairs[b]?.[h];
    if (t === undefined) throw new Error(`AttentionMask: no bias for row ${b}, head ${h}`);
    return t;
  }

  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned.length = 0;
  }
}

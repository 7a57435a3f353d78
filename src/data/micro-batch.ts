// A micro-batch: the unit of work a worker computes (DESIGN §2), the same object from the data plan
// to the wire (src/protocol) to the model (a TokenBatch). Rows are right-padded to a common
// length rounded up to a multiple of 8 (DataCollatorForSeq2Seq(pad_to_multiple_of=8)): input ids with
// the pad id (0), labels with -100, attention mask 0. Right padding because MPT refuses left padding
// in training.
import { IGNORE_INDEX, type TokenizedExample } from './tokenize-example.ts';

export interface MicroBatch {
  /** Unique across the run's training micro-batches, deterministic (step * gradAccum + index). */
  readonly id: number;
  /** The optimizer step it belongs to (0-based); -1 for evaluation micro-batches. */
  readonly step: number;
  readonly rows: number;
  readonly seqLen: number;
  /** rows * seqLen, row-major. */
  readonly inputIds: Int32Array;
  readonly labels: Int32Array;
  readonly attentionMask: Int32Array;
}

export interface CollateOptions {
  readonly padToMultipleOf?: number;
  readonly padTokenId?: number;
}

/** Pads and stacks examples into one micro-batch. */
export function collate(
  examples: readonly TokenizedExample[],
  indices: readonly number[],
  meta: { readonly id: number; readonly step: number },
  o: CollateOptions = {},
): MicroBatch {
  const multiple = o.padToMultipleOf ?? 8;
  const pad = o.padTokenId ?? 0;
  const rows = indices.length;
  if (rows === 0) throw new Error('collate: a micro-batch needs at least one example');
  let longest = 0;
  for (const i of indices) longest = Math.max(longest, examples[i]!.inputIds.length);
  const seqLen = Math.max(multiple, Math.ceil(longest / multiple) * multiple);
  const inputIds = new Int32Array(rows * seqLen).fill(pad);
  const labels = new Int32Array(rows * seqLen).fill(IGNORE_INDEX);
  const attentionMask = new Int32Array(rows * seqLen);
  indices.forEach((index, r) => {
    const e = examples[index]!;
    inputIds.set(e.inputIds, r * seqLen);
    labels.set(e.labels, r * seqLen);
    attentionMask.fill(1, r * seqLen, r * seqLen + e.inputIds.length);
  });
  return {
    id: meta.id,
    step: meta.step,
    rows,
    seqLen,
    inputIds,
    labels,
    attentionMask,
  };
}

/** Padded token slots that carry no real token: rows * seqLen - real tokens. */
export function paddingOf(mb: MicroBatch): number {
  let real = 0;
  for (const m of mb.attentionMask) real += m;
  return mb.rows * mb.seqLen - real;
}

/**
 * Supervised tokens of a micro-batch as the loss counts them: after the one-token shift (position t
 * predicts labels[t + 1]), every label at t >= 1 of a row that is not -100. The coordinator counts
 * them from the labels it holds rather than trusting a worker's report.
 */
export function supervisedTokens(mb: Pick<MicroBatch, 'rows' | 'seqLen' | 'labels'>): number {
  let n = 0;
  for (let r = 0; r < mb.rows; r++) {
    const row = r * mb.seqLen;
    for (let t = 1; t < mb.seqLen; t++) if (mb.labels[row + t] !== IGNORE_INDEX) n++;
  }
  return n;
}

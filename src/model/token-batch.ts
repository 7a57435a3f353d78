// What the model takes in: `rows` sequences of `seqLen` token ids with their labels (-100 = not
// supervised) and right-padding mask, validated once; and its supervised positions after the
// one-token shift (position t predicts labels[t + 1]). A training MicroBatch (src/data) is one;
// generation passes ids alone.
import { IGNORE_INDEX } from '../data/tokenize-example.ts';
import type { Targets } from './loss.ts';

export interface TokenBatch {
  readonly rows: number;
  readonly seqLen: number;
  /** [rows, seqLen] row-major token ids. */
  readonly inputIds: Int32Array;
  /** [rows, seqLen] labels; -100 where not supervised. Unused by forward-only calls. */
  readonly labels?: Int32Array | null;
  /** [rows, seqLen] 1 = real token, 0 = padding; null/absent = no padding. */
  readonly attentionMask?: Int32Array | null;
}

/** Throws naming the field, row and position of the first bad value. */
export function validateTokenBatch(b: TokenBatch, vocabSize: number, maxSeqLen: number): void {
  const n = b.rows * b.seqLen;
  if (!Number.isInteger(b.rows) || b.rows < 1 || !Number.isInteger(b.seqLen) || b.seqLen < 1) {
    throw new Error(`micro-batch: rows (${b.rows}) and seqLen (${b.seqLen}) must be positive integers`);
  }
  if (b.seqLen > maxSeqLen) {
    throw new Error(`micro-batch: seqLen ${b.seqLen} exceeds the model's max_seq_len ${maxSeqLen}`);
  }
  const check = (
    name: string,
    a: Int32Array | null | undefined,
    ok: (v: number) => boolean,
    want: string,
  ) => {
    if (a == null) return;
    if (a.length !== n)
      throw new Error(`micro-batch: ${name} has ${a.length} values, expected rows·seqLen = ${n}`);
    for (let i = 0; i < n; i++) {
      const v = a[i] as number;
      if (!ok(v)) {
        const row = Math.floor(i / b.seqLen);
        throw new Error(`micro-batch: ${name}[${row}][${i % b.seqLen}] = ${v}, expected ${want}`);
      }
    }
  };
  check('inputIds', b.inputIds, (v) => v >= 0 && v < vocabSize, `a token id in [0, ${vocabSize})`);
  check(
    'labels',
    b.labels,
    (v) => v === IGNORE_INDEX || (v >= 0 && v < vocabSize),
    `-100 or an id < ${vocabSize}`,
  );
  check('attentionMask', b.attentionMask, (v) => v === 0 || v === 1, '0 or 1');
}

/** Positions with a target after the shift: row index b·T + t where labels[b][t+1] != -100. */
export function shiftedTargets(b: TokenBatch): Targets {
  const labels = b.labels;
  if (labels == null) return { rows: new Int32Array(0), labels: new Int32Array(0) };
  const rows: number[] = [];
  const targets: number[] = [];
  for (let r = 0; r < b.rows; r++) {
    for (let t = 0; t + 1 < b.seqLen; t++) {
      const y = labels[r * b.seqLen + t + 1] as number;
      if (y === IGNORE_INDEX) continue;
      rows.push(r * b.seqLen + t);
      targets.push(y);
    }
  }
  return { rows: Int32Array.from(rows), labels: Int32Array.from(targets) };
}

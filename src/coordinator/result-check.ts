// What the coordinator refuses to count from a worker's micro-batch result (docs/security.md): a
// loss or gradient norm that is not a finite number (a faulty device or a forged result would put
// NaN/Inf into every replica), and a supervised-token count other than the one the coordinator
// counts itself from the labels it dealt. Pure, so each case is a unit test.
import { type MicroBatch, supervisedTokens } from '../data/micro-batch.ts';
import type { MicroBatchResult } from '../protocol/wire.ts';

export interface CheckedResult {
  /** Supervised tokens as the coordinator counts them (what the ledger records). */
  readonly tokens: number;
}

/** Why `r` cannot be counted for `mb`, or the coordinator's own token count when it can. */
export function checkResult(
  mb: MicroBatch,
  r: Pick<MicroBatchResult, 'lossSum' | 'supervisedTokens' | 'gradNorm'>,
  train: boolean,
): { readonly ok: true; readonly tokens: number } | { readonly ok: false; readonly why: string } {
  const tokens = supervisedTokens(mb);
  if (!Number.isFinite(r.lossSum) || r.lossSum < 0) {
    return { ok: false, why: `its loss sum for micro-batch ${mb.id} is ${r.lossSum}, not a finite sum >= 0` };
  }
  if (train && !Number.isFinite(r.gradNorm)) {
    return { ok: false, why: `its gradient for micro-batch ${mb.id} is not finite (norm ${r.gradNorm})` };
  }
  if (r.supervisedTokens !== tokens) {
    return {
      ok: false,
      why: `it reports ${r.supervisedTokens} supervised tokens for micro-batch ${mb.id}; its labels hold ${tokens}`,
    };
  }
  return { ok: true, tokens };
}

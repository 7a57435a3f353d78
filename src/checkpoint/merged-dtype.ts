// Which dtype `lora-mpt merge` writes: named by the user (--dtype float32|bfloat16|float16) or `auto`,
// the base checkpoint's own weight dtype, as PEFT's merge_and_unload + save_pretrained keeps it. A base
// whose tensors are mixed (or stored in a dtype a merged model is not written in) gets float32.
import type { FloatDtype } from '../formats/dtypes.ts';
import type { CheckpointTensorInfo } from './checkpoint.ts';

export const DTYPE_CHOICES = ['auto', 'float32', 'bfloat16', 'float16'] as const;
export type DtypeChoice = (typeof DTYPE_CHOICES)[number];

/** torch's name of each written dtype (config.json's `dtype` / `torch_dtype`). */
export const TORCH_DTYPE_NAME: Readonly<Record<FloatDtype, string>> = {
  F32: 'float32',
  BF16: 'bfloat16',
  F16: 'float16',
};

const BY_TORCH_NAME: Readonly<Record<string, FloatDtype>> = {
  float32: 'F32',
  bfloat16: 'BF16',
  float16: 'F16',
};

export function isDtypeChoice(s: string): s is DtypeChoice {
  return (DTYPE_CHOICES as readonly string[]).includes(s);
}

export interface ResolvedDtype {
  readonly dtype: FloatDtype;
  /** Why: "chosen", "the base's dtype", or why auto fell back to float32. */
  readonly reason: string;
}

/** The dtype to write for `choice` given the base checkpoint's tensors. */
export function resolveMergedDtype(
  choice: DtypeChoice,
  base: readonly CheckpointTensorInfo[],
): ResolvedDtype {
  if (choice !== 'auto') return { dtype: BY_TORCH_NAME[choice] as FloatDtype, reason: '--dtype' };
  const counts = new Map<string, number>();
  for (const t of base) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + 1);
  const stored = [...counts.entries()].map(([d, n]) => `${n} ${d}`).join(', ');
  if (counts.size === 0) return { dtype: 'F32', reason: 'auto: the base lists no tensors, so float32' };
  if (counts.size > 1) {
    return { dtype: 'F32', reason: `auto: the base's tensors are mixed (${stored}), so float32` };
  }
  const only = [...counts.keys()][0] as string;
  if (only === 'F32' || only === 'BF16' || only === 'F16') {
    return { dtype: only, reason: `auto: the base's weights are all ${TORCH_DTYPE_NAME[only]}` };
  }
  return {
    dtype: 'F32',
    reason: `auto: the base's weights are ${only}, which merge does not write, so float32`,
  };
}

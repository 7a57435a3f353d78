// Compares PEFT adapters written by different runs: same tensor names, and for every tensor a
// relative error ||a - b|| / ||a|| (L2 over the tensor) within `relTol` (0 asks for bitwise
// equality). Runs that split a step differently sum the same float32 gradients in another order;
// AdamW divides by sqrt(v), so an element whose gradient nearly cancels can move a few 1e-7 apart
// while the tensor as a whole agrees to ~1e-6: the norm is the measure that means "same adapter".
import assert from 'node:assert/strict';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';

export interface AdapterDifference {
  /** Largest per-tensor ||a - b|| / ||a||. */
  readonly relative: number;
  /** Largest |a_i - b_i| / max|a| over all tensors (reported, not asserted). */
  readonly elementwise: number;
}

export async function assertSameAdapter(
  dirA: string,
  dirB: string,
  relTol: number,
): Promise<AdapterDifference> {
  const a = await readPeftAdapter(dirA);
  const b = await readPeftAdapter(dirB);
  assert.deepEqual([...b.tensors.keys()].sort(), [...a.tensors.keys()].sort());
  let relative = 0;
  let elementwise = 0;
  for (const [name, ta] of a.tensors) {
    const tb = b.tensors.get(name)!.data;
    let diff2 = 0;
    let norm2 = 0;
    let scale = 0;
    let worst = 0;
    for (let i = 0; i < ta.data.length; i++) {
      const d = ta.data[i]! - tb[i]!;
      diff2 += d * d;
      norm2 += ta.data[i]! * ta.data[i]!;
      scale = Math.max(scale, Math.abs(ta.data[i]!));
      worst = Math.max(worst, Math.abs(d));
    }
    const rel = norm2 > 0 ? Math.sqrt(diff2 / norm2) : Math.sqrt(diff2);
    elementwise = Math.max(elementwise, scale > 0 ? worst / scale : worst);
    relative = Math.max(relative, rel);
    if (relTol === 0 ? diff2 !== 0 : rel > relTol) {
      assert.fail(`${name}: ||a - b|| / ||a|| = ${rel} > ${relTol} (largest element difference ${worst})`);
    }
  }
  return { relative, elementwise };
}

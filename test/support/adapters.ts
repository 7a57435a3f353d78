// Compares PEFT adapters written by different runs: same tensor names, and values equal within a
// tolerance relative to each tensor's largest magnitude (0 asks for bitwise equality).
import assert from 'node:assert/strict';
import { readPeftAdapter } from '../../src/model/peft-adapter.ts';

export async function assertSameAdapter(dirA: string, dirB: string, relTol: number): Promise<number> {
  const a = await readPeftAdapter(dirA);
  const b = await readPeftAdapter(dirB);
  assert.deepEqual([...b.tensors.keys()].sort(), [...a.tensors.keys()].sort());
  let worst = 0;
  for (const [name, ta] of a.tensors) {
    const tb = b.tensors.get(name)!.data;
    let scale = 0;
    for (const v of ta.data) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < ta.data.length; i++) {
      const rel = Math.abs(ta.data[i]! - tb[i]!) / (scale || 1);
      worst = Math.max(worst, rel);
      if (rel > relTol) assert.fail(`${name}[${i}]: ${ta.data[i]} vs ${tb[i]} (relative ${rel} > ${relTol})`);
    }
  }
  return worst;
}

// Which dtype `lora-mpt merge --dtype auto` picks: the base checkpoint's stored dtype when all its
// tensors share one that merge writes, float32 (saying why) otherwise; a named dtype always wins.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { resolveMergedDtype } from '../../src/checkpoint/merged-dtype.ts';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import type { Dtype } from '../../src/formats/dtypes.ts';

const fixture = (c: string) => fileURLToPath(new URL(`../fixtures/mpt/${c}`, import.meta.url));
const info = (dtypes: Dtype[]) => dtypes.map((dtype, i) => ({ name: `t${i}`, shape: [2], dtype, file: 'f' }));

describe('merged dtype', () => {
  it('is bfloat16 for a bf16 checkpoint (safetensors and torch .bin) and float32 for a float32 one', async () => {
    const bf16 = await openCheckpoint(fixture('h8-clip-bf16'));
    assert.equal(resolveMergedDtype('auto', bf16.tensorInfo).dtype, 'BF16');
    const bin = await openCheckpoint(fixture('h8-clip-bf16'), { format: 'bin' });
    assert.equal(resolveMergedDtype('auto', bin.tensorInfo).dtype, 'BF16');
    const f32 = await openCheckpoint(fixture('h6-all'));
    assert.equal(resolveMergedDtype('auto', f32.tensorInfo).dtype, 'F32');
  });

  it('falls back to float32 for mixed or unwritable dtypes, saying what it found', () => {
    const mixed = resolveMergedDtype('auto', info(['BF16', 'BF16', 'F32']));
    assert.equal(mixed.dtype, 'F32');
    assert.match(mixed.reason, /mixed \(2 BF16, 1 F32\)/);
    const f64 = resolveMergedDtype('auto', info(['F64']));
    assert.equal(f64.dtype, 'F32');
    assert.match(f64.reason, /F64/);
  });

  it('takes the named dtype whatever the base holds', () => {
    assert.equal(resolveMergedDtype('float16', info(['BF16'])).dtype, 'F16');
    assert.equal(resolveMergedDtype('float32', info(['BF16'])).dtype, 'F32');
    assert.equal(resolveMergedDtype('bfloat16', info(['F32'])).dtype, 'BF16');
  });
});

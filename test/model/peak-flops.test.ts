// The datasheet peak MFU divides by matches the precision float32 matmuls run at: FP32 by default
// (lora-mpt sets NVIDIA_TF32_OVERRIDE=0), the TF32 tensor-core figure only when LORA_MPT_TF32=1, and
// FP32 on GPUs without TF32 either way.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gpuPeakFor } from '../../src/model/peak-flops.ts';

describe('GPU peak for MFU', () => {
  it('is the FP32 figure unless TF32 is on, and TF32 only where the GPU has it', () => {
    const table: [string, boolean, number | undefined, string | undefined][] = [
      ['NVIDIA A100-SXM4-80GB', false, 19.5, 'FP32'],
      ['NVIDIA A100-SXM4-80GB', true, 156, 'TF32'],
      ['NVIDIA H100 80GB HBM3', false, 67, 'FP32'],
      ['NVIDIA H100 PCIe', true, 378, 'TF32'],
      ['NVIDIA L4', true, 60, 'TF32'],
      ['Tesla V100-SXM2-16GB', true, 15.7, 'FP32'],
      ['Tesla T4', false, 8.1, 'FP32'],
      ['NVIDIA GeForce GTX 1080', false, undefined, undefined],
    ];
    for (const [name, tf32, tflops, precision] of table) {
      const p = gpuPeakFor(name, tf32);
      assert.deepEqual([p?.tflops, p?.precision], [tflops, precision], `${name} tf32=${tf32}`);
    }
  });
});

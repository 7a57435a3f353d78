// What the memory check compares the plan with, per backend: RAM on CPU backends, capped at the wasm
// heap on wasm, and on a GPU the device only through --device_memory_gb (tfjs-node-gpu reports none).
import assert from 'node:assert/strict';
import { totalmem } from 'node:os';
import { describe, it } from 'node:test';
import { GIB } from '../../src/model/memory-plan.ts';
import { checkModelMemory, MemoryError, memoryBudgets } from '../../src/worker/memory-check.ts';
import { tinyConfig } from '../model/support/tiny-mpt.ts';

const cpu = { name: 'tensorflow', layout: 'batched', summary: 'backend tensorflow (test)' } as const;
const wasm = { name: 'wasm', layout: 'plain-2d', summary: 'backend wasm (test)' } as const;
const gpu = { name: 'tensorflow', layout: 'batched', summary: 'backend tensorflow (test, on GPU)' } as const;
const request = {
  microBatchSize: 4,
  cutoffLen: 256,
  load8bit: false,
  gradientCheckpointing: false,
  lora: { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['Wqkv'] },
  memoryGib: 0,
  training: true,
};

describe('memory budgets', () => {
  it('plans a CPU backend against one pool of RAM, or the flag when given', () => {
    const [measured] = memoryBudgets(cpu, 0);
    assert.equal(measured?.pool, 'total');
    assert.ok((measured?.bytes ?? 0) > 0);
    assert.deepEqual(memoryBudgets(cpu, 20), [
      { bytes: 20 * GIB, pool: 'total', where: 'given by --device_memory_gb' },
    ]);
  });

  it('caps wasm at its 4 GiB heap', () => {
    const [b] = memoryBudgets(wasm, 0);
    assert.ok((b?.bytes ?? Infinity) <= 4 * GIB - 65536);
  });

  it('checks a GPU device only with --device_memory_gb, and its host part always', () => {
    assert.deepEqual(
      memoryBudgets(gpu, 0).map((b) => b.pool),
      ['host'],
    );
    const [device, host] = memoryBudgets(gpu, 80);
    assert.deepEqual([device?.pool, device?.bytes], ['device', 80 * GIB]);
    // The host part is what the machine has free now (it moves as other processes run).
    assert.equal(host?.pool, 'host');
    assert.ok((host?.bytes ?? 0) > 0 && (host?.bytes ?? 0) <= totalmem(), `host ${host?.bytes}`);
  });

  it('says when the GPU memory went unchecked, and refuses MPT-7B in f32 on a 24 GiB GPU', () => {
    const mpt7b = tinyConfig({
      d_model: 4096,
      n_heads: 32,
      n_layers: 32,
      vocab_size: 50432,
      max_seq_len: 2048,
    });
    assert.match(checkModelMemory(mpt7b, gpu, request) ?? '', /pass --device_memory_gb/);
    assert.throws(
      () => checkModelMemory(mpt7b, gpu, { ...request, memoryGib: 24 }),
      (e: unknown) =>
        e instanceof MemoryError && /GiB of device memory .* --load_8bit would fit it/.test(e.message),
    );
  });
});

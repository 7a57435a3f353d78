import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initBackend, layoutFor } from '../../src/model/backend.ts';

describe('backend selection', () => {
  it('uses plain 2-D matmuls on wasm and cpu, batched ones on tensorflow', () => {
    assert.equal(layoutFor('wasm'), 'plain-2d');
    assert.equal(layoutFor('cpu'), 'plain-2d');
    assert.equal(layoutFor('tensorflow'), 'batched');
  });

  it('says how to install tfjs-node when --backend tensorflow is asked for without it', async () => {
    await assert.rejects(
      initBackend('tensorflow'),
      /tfjs-node-gpu is not installed.*npm install @tensorflow\/tfjs-node-gpu/,
    );
  });

  it('falls back to the single-threaded wasm backend on auto when no binding is installed', async () => {
    const active = await initBackend('auto');
    assert.deepEqual(active, { name: 'wasm', layout: 'plain-2d' });
  });

  it('starts cpu on request', async () => {
    assert.deepEqual(await initBackend('cpu'), { name: 'cpu', layout: 'plain-2d' });
  });
});

// The distributed path of DoRA: a worker knows only the run config the coordinator's Welcome carries
// (as JSON), so useDora must survive that trip and configure the worker's model: magnitudes in the
// flat layout it all-reduces, and gradients for them from every micro-batch.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LORA_DEFAULTS } from '../../src/checkpoint/lora-spec.ts';
import { writeRandomMpt } from '../../src/families/mpt/random-checkpoint.ts';
import { unflatten } from '../../src/train/param-layout.ts';
import { parseRunConfig, type RunConfig } from '../../src/train/run-config.ts';
import { loadModelCompute } from '../../src/worker/model-compute.ts';

const run: RunConfig = {
  runId: 'run-dora',
  baseModel: 'unused',
  lora: {
    ...LORA_DEFAULTS,
    r: 2,
    loraAlpha: 4,
    loraDropout: 0.1,
    targetModules: ['Wqkv', 'down_proj'],
    useDora: true,
  },
  seed: 3,
  maxGradNorm: 1,
  gradientCheckpointing: true,
  load8bit: false,
  allReduceAlgorithm: 'shard-owner',
  allReduceEncoding: 'f32',
  allReduceTimeoutMs: 5000,
  allReduceFrameBytes: 0,
};

describe('a worker given a DoRA run config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-dora-worker-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps useDora through the JSON trip and trains the magnitudes', async () => {
    const parsed = parseRunConfig(JSON.stringify(run));
    assert.equal(parsed.lora.useDora, true);
    assert.throws(
      () => parseRunConfig(JSON.stringify({ ...run, lora: { ...run.lora, useDora: undefined } })),
      /useDora/,
    );
    await writeRandomMpt(dir, { dModel: 16, nHeads: 2, nLayers: 2, vocabSize: 64, maxSeqLen: 16, seed: 5 });
    const loaded = await loadModelCompute(dir, 'cpu', parsed, {
      microBatchSize: 2,
      cutoffLen: 8,
      memoryGib: 0,
    });
    const { model } = loaded.compute;
    assert.equal(model.lora?.useDora, true);
    const magnitudes = loaded.layout.specs.filter((s) => s.name.endsWith('.lora_magnitude_vector'));
    assert.deepEqual(
      magnitudes.map((s) => s.shape[0]),
      [48, 16, 48, 16],
    );
    const params = new Float32Array(loaded.layout.size).map((_, i) => 0.05 * Math.sin(i) + 0.5);
    loaded.compute.setAdapter(params);
    const r = await loaded.compute.train({
      id: 9,
      step: 0,
      rows: 2,
      seqLen: 4,
      inputIds: Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8),
      labels: Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8),
      attentionMask: Int32Array.of(1, 1, 1, 1, 1, 1, 1, 1),
    });
    const grads = unflatten(loaded.layout, r.grad);
    for (const s of magnitudes)
      assert.ok(
        (grads.get(s.name) as Float32Array).some((v) => v !== 0),
        s.name,
      );
    model.dispose();
  });

  it('keeps layersToTransform through the JSON trip and refuses a negative block', async () => {
    const parsed = parseRunConfig(
      JSON.stringify({ ...run, lora: { ...run.lora, useDora: false, layersToTransform: [1] } }),
    );
    assert.deepEqual(parsed.lora.layersToTransform, [1]);
    assert.equal(parseRunConfig(JSON.stringify(run)).lora.layersToTransform, null);
    assert.throws(
      () => parseRunConfig(JSON.stringify({ ...run, lora: { ...run.lora, layersToTransform: [-1] } })),
      /"layersToTransform" must be null or a list of block numbers/,
    );
  });
});

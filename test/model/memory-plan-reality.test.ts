// The memory plan against what a real step holds: TensorFlow.js's own count of live tensor bytes at
// its peak during one training step (tf.profile), on every backend, with and without checkpointing.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel } from '../../src/families/load-model.ts';
import { layoutFor } from '../../src/model/backend.ts';
import { planMemory } from '../../src/model/memory-plan.ts';
import { computeLoraGradients } from '../../src/model/train-step.ts';
import { describeOnBackends } from './support/backends.ts';
import { hostTensors, randomBatch, randomLora, randomWeights, tinyConfig } from './support/tiny-mpt.ts';

/** Planned step memory (activations + working set) may differ from the measured peak by this factor. */
const TOLERANCE = 0.25;

describeOnBackends('memory plan vs a measured training step', (backend) => {
  for (const gradientCheckpointing of [false, true]) {
    it(`predicts the peak tensor bytes of one step within ${TOLERANCE * 100}% (checkpointing ${gradientCheckpointing ? 'on' : 'off'})`, async () => {
      const config = tinyConfig({
        d_model: 128,
        n_heads: 4,
        n_layers: 2,
        vocab_size: 1024,
        max_seq_len: 128,
      });
      const layout = layoutFor(backend);
      const lora = { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['Wqkv'] };
      const empty = tf.memory().numBytes;
      const model = await loadModel(config, hostTensors(config, randomWeights(config, 3)), { layout });
      try {
        const targets = model.configureLora(lora);
        model.setLoraWeights(randomLora(targets, lora.r, 4));
        const batch = randomBatch(config, 4, 128, 5);
        const before = tf.memory().numBytes;
        const info = await tf.profile(async () => {
          await computeLoraGradients(model, batch, { gradientCheckpointing });
        });
        const measured = info.peakBytes - before;
        const plan = planMemory(config, {
          layout,
          load8bit: false,
          gradientCheckpointing,
          microBatchSize: 4,
          seqLen: 128,
          lora,
          training: true,
        });
        const planned = plan.activations + plan.working;
        // The resident tensors (weights, vocab chunks, LoRA factors) are counted exactly.
        assert.equal(before - empty, plan.device - planned);
        assert.ok(
          Math.abs(planned / measured - 1) <= TOLERANCE,
          `planned ${planned} bytes, measured ${measured} (ratio ${(planned / measured).toFixed(2)})`,
        );
      } finally {
        model.dispose();
      }
    });
  }
});

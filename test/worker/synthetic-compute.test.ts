import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { LoraSettings } from '../../src/checkpoint/lora-spec.ts';
import { collate, type MicroBatch, supervisedTokens } from '../../src/data/micro-batch.ts';
import { IGNORE_INDEX } from '../../src/data/tokenize-example.ts';
import { openSyntheticModel } from '../../src/families/synthetic-model.ts';
import { gpuProfile } from '../../src/model/gpu-profiles.ts';
import type { LoraRunSettings } from '../../src/worker/model-compute.ts';
import {
  GRADIENT_SCALE,
  loadSyntheticCompute,
  SyntheticCompute,
} from '../../src/worker/synthetic-compute.ts';

const settings = (lora: Partial<LoraSettings>, seed = 42): LoraRunSettings => ({
  lora: { r: 8, loraAlpha: 16, loraDropout: 0.05, targetModules: ['Wqkv'], ...lora },
  seed,
  gradientCheckpointing: false,
  load8bit: false,
});

/** A micro-batch of `rows` rows of `len` tokens, the first `prompt` of each unsupervised. */
function microBatch(id: number, rows: number, len: number, prompt: number): MicroBatch {
  const examples = Array.from({ length: rows }, (_, r) => ({
    inputIds: Int32Array.from({ length: len }, (_, t) => 100 + r + t),
    labels: Int32Array.from({ length: len }, (_, t) => (t < prompt ? IGNORE_INDEX : 100 + r + t)),
  }));
  return collate(
    examples,
    examples.map((_, i) => i),
    { id, step: 0 },
  );
}

describe('synthetic compute: gradients of the exact size', () => {
  it('gives MPT-7B r=8 on Wqkv its 4,194,304 LoRA values', async () => {
    const s = await loadSyntheticCompute('synthetic:mpt-7b', settings({}), null);
    assert.equal(s.layout.size, 4_194_304);
    const r = await s.compute.train(microBatch(0, 2, 16, 4));
    assert.equal(r.grad.length, 4_194_304);
  });

  it('gives MPT-7B r=16 on all four Linears r x (in + out) per Linear per block', async () => {
    const all = ['Wqkv', 'out_proj', 'up_proj', 'down_proj'];
    const s = await loadSyntheticCompute('synthetic:mpt-7b', settings({ r: 16, targetModules: all }), null);
    const { config } = await openSyntheticModel('synthetic:mpt-7b');
    assert.deepEqual(
      config.arch.linears.map((l) => l.name),
      all,
      'MPT has these four Linears per block',
    );
    const perBlock = config.arch.linears.reduce((n, l) => n + 16 * (l.inFeatures + l.outFeatures), 0);
    assert.equal(s.layout.size, config.nLayers * perBlock);
    const r = await s.compute.train(microBatch(3, 1, 24, 0));
    assert.equal(r.grad.length, s.layout.size);
  });

  it('reads any config.json, and never the weights beside it', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'synthetic-config-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const config = {
      model_type: 'mpt',
      d_model: 64,
      n_heads: 4,
      n_layers: 3,
      vocab_size: 1000,
      max_seq_len: 128,
    };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    writeFileSync(join(dir, 'model.safetensors'), 'not a safetensors file');
    const s = await loadSyntheticCompute(`synthetic:${dir}`, settings({ r: 4 }), null);
    // Wqkv: [3·64, 64], so r·(in + out) = 4·(64 + 192) per block.
    assert.equal(s.layout.size, 3 * 4 * (64 + 192));
    const byFile = await openSyntheticModel(`synthetic:${join(dir, 'config.json')}`);
    assert.equal(byFile.fingerprint, s.fingerprint, 'the directory and its config.json are one model');
  });

  it('refuses a name that is neither a named config nor a file, naming the named ones', async () => {
    await assert.rejects(openSyntheticModel('synthetic:mpt-8b'), /"mpt-8b".*mpt-7b, mpt-7b-8k, mpt-30b/);
  });

  it('fingerprints the config: another config, another fingerprint', async () => {
    const a = await openSyntheticModel('synthetic:mpt-7b');
    const b = await openSyntheticModel('synthetic:mpt-7b-8k');
    assert.notEqual(a.fingerprint, b.fingerprint);
    assert.equal((await openSyntheticModel('synthetic:mpt-7b')).fingerprint, a.fingerprint);
  });
});

describe('synthetic compute: deterministic from (seed, micro-batch id)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synthetic-det-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'mpt',
      d_model: 32,
      n_heads: 4,
      n_layers: 2,
      vocab_size: 500,
      max_seq_len: 64,
    }),
  );
  const load = (seed: number) => loadSyntheticCompute(`synthetic:${dir}`, settings({}, seed), null);

  it('gives the same bytes for the same micro-batch in another instance', async () => {
    const [a, b] = [await load(7), await load(7)];
    const mb = microBatch(11, 2, 20, 5);
    const [ra, rb] = [await a.compute.train(mb), await b.compute.train(mb)];
    assert.deepEqual(ra.grad, rb.grad);
    assert.equal(ra.lossSum, rb.lossSum);
    assert.deepEqual(await a.compute.evaluate(mb), await b.compute.evaluate(mb));
  });

  it('gives another micro-batch id or another seed another gradient', async () => {
    const a = await load(7);
    const g11 = (await a.compute.train(microBatch(11, 2, 20, 5))).grad;
    const g12 = (await a.compute.train(microBatch(12, 2, 20, 5))).grad;
    const other = (await (await load(8)).compute.train(microBatch(11, 2, 20, 5))).grad;
    assert.notDeepEqual(g11, g12);
    assert.notDeepEqual(g11, other);
  });

  it('scales with the supervised tokens: |g| < 1e-3 per token, loss per token in [1.5, 2.5)', async () => {
    const a = await load(7);
    const mb = microBatch(5, 3, 30, 10);
    const tokens = supervisedTokens(mb);
    const r = await a.compute.train(mb);
    assert.equal(r.tokens, tokens);
    let max = 0;
    for (const v of r.grad) max = Math.max(max, Math.abs(v));
    assert.ok(max <= GRADIENT_SCALE * tokens && max > 0.9 * GRADIENT_SCALE * tokens, `max |g| ${max}`);
    assert.ok(r.lossSum >= 1.5 * tokens && r.lossSum < 2.5 * tokens, `loss sum ${r.lossSum}`);
  });

  it('gives the same micro-batch id with twice the tokens exactly twice the gradient', async () => {
    const a = await load(7);
    const once = await a.compute.train(microBatch(5, 3, 30, 10));
    const twice = await a.compute.train(microBatch(5, 6, 30, 10));
    assert.equal(twice.tokens, 2 * once.tokens);
    assert.deepEqual(
      twice.grad,
      once.grad.map((v) => 2 * v),
    );
  });

  it('refuses an adapter of another size, naming both sizes', async () => {
    const a = await load(7);
    assert.throws(() => a.compute.setAdapter(new Float32Array(3)), /adapter of 3 values, layout \d+/);
  });
});

describe('synthetic compute: the time a GPU would take', () => {
  // MPT-7B, r=8 on Wqkv, plain LoRA, 2 rows x 64 positions: src/model/flops.ts's formula by hand.
  const D = 4096;
  const L = 32;
  const V = 50432;
  const r = 8;
  const P = 12 * D * D; // Wqkv 3D², out_proj D², up_proj 4D², down_proj 4D²
  const P0 = 3 * D * D; // the lowest Linear, Wqkv
  const handFlops = (rows: number, seqLen: number, logitRows: number) => {
    const N = rows * seqLen;
    const lora = L * 2 * N * r * (D + 3 * D);
    const attention = 4 * rows * seqLen * seqLen * D * L;
    const logits = 2 * logitRows * V * D;
    const forward = 2 * N * L * P + lora + attention + logits;
    // Block 0's Wqkv gets no input gradient: not through W (P0), nor through LoRA A (2·N·r·D).
    const backward = 2 * N * (L * P - P0) + 2 * lora - 2 * N * r * D + 2 * attention + logits;
    return { train: forward + backward, forward };
  };

  const frozenClock = () => {
    const waits: number[] = [];
    return { waits, clock: { now: () => 1000, wait: async (ms: number) => waits.push(ms) } };
  };

  it('waits FLOPs / (peak x MFU) for an A100-80GB at MFU 0.4: 19.5 TFLOP/s FP32', async () => {
    const loaded = await loadSyntheticCompute('synthetic:mpt-7b', settings({ loraDropout: 0 }), null);
    const profile = gpuProfile('a100-80gb', { mfu: 0.4 });
    assert.equal(profile.peakFlopsPerSecond, 19.5e12);
    const { waits, clock } = frozenClock();
    const c = new SyntheticCompute(loaded.layout, loaded.flops, 42, profile, clock);
    const mb = microBatch(1, 2, 64, 16);
    const tokens = supervisedTokens(mb);
    await c.train(mb);
    await c.evaluate(mb);
    const hand = handFlops(2, 64, tokens);
    assert.equal(waits.length, 2);
    assert.ok(
      Math.abs(waits[0]! / ((hand.train / (19.5e12 * 0.4)) * 1000) - 1) < 1e-12,
      `train ${waits[0]} ms`,
    );
    assert.ok(
      Math.abs(waits[1]! / ((hand.forward / (19.5e12 * 0.4)) * 1000) - 1) < 1e-12,
      `eval ${waits[1]} ms`,
    );
  });

  it('does not wait at all without a profile (--gpu_profile none)', async () => {
    const loaded = await loadSyntheticCompute('synthetic:mpt-7b', settings({}), null);
    const { waits, clock } = frozenClock();
    const c = new SyntheticCompute(loaded.layout, loaded.flops, 42, null, clock);
    await c.train(microBatch(1, 1, 16, 0));
    assert.deepEqual(waits, []);
  });

  it('counts the host time already spent as part of the modelled time', async () => {
    const loaded = await loadSyntheticCompute('synthetic:mpt-7b', settings({}), null);
    const profile = gpuProfile('h100-80gb');
    const t = [0, 2];
    const waits: number[] = [];
    const c = new SyntheticCompute(loaded.layout, loaded.flops, 42, profile, {
      now: () => t.shift() ?? 2,
      wait: async (ms) => waits.push(ms),
    });
    const mb = microBatch(1, 1, 16, 0);
    await c.train(mb);
    assert.equal(waits.length, 1);
    const modelled = c.modelledSeconds(handFlops(1, 16, supervisedTokens(mb)).train) * 1000;
    assert.ok(Math.abs(waits[0]! - (modelled - 2)) < 1e-9, `${waits[0]} ms of ${modelled}`);
  });
});

describe('GPU profiles', () => {
  it('refuses an unknown name, naming the known ones and none', () => {
    assert.throws(() => gpuProfile('a200'), /"a200" is unknown: expected one of a100-40gb, .*h200.* or none/);
  });

  it('refuses an MFU outside (0, 1]: 0, negative, above 1, NaN, Infinity', () => {
    for (const mfu of [0, -0.1, 1.0001, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => gpuProfile('l4', { mfu }), /MFU .* is not in \(0, 1\]/, `mfu ${mfu}`);
    }
    assert.equal(gpuProfile('l4', { mfu: 1 }).mfu, 1);
  });

  it('takes the TF32 figure with tf32, and a given peak over the datasheet', () => {
    assert.equal(gpuProfile('h100-80gb').peakFlopsPerSecond, 67e12);
    assert.equal(gpuProfile('h100-80gb', { tf32: true }).peakFlopsPerSecond, 494.7e12);
    const given = gpuProfile('h100-80gb', { peakTflops: 989 });
    assert.equal(given.peakFlopsPerSecond, 989e12);
    assert.equal(given.precision, 'given');
  });
});

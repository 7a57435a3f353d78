// Child process of bench/train-step.ts: one of our backends at one thread count, answering one
// request per stdin line with one JSON line, so the parent can interleave it with the other peers
// (each then sees the same machine load). Requests: `step` (one LoRA training step of the mid MPT,
// loss and gradients read back), `peak` (plain matmul GFLOP/s on this backend and thread count),
// `extras` (one step with gradient checkpointing, one with load_8bit).
// Arguments: BACKEND THREADS T B [lora|dora] (THREADS: TensorFlow intra-op threads; wasm runs one; with
// lora or dora each `step` also sets the adapter weights, as a training step does — DoRA's per-step
// weight norms are made there — and dora makes the adapter DoRA).
import { createInterface } from 'node:readline';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel } from '../../src/families/load-model.ts';
import { parseMptConfig } from '../../src/families/mpt/config.ts';
import { type BackendChoice, initBackend } from '../../src/model/backend.ts';
import { computeLoraGradients } from '../../src/model/train-step.ts';
import { MID, midBatch, midModelTensors, normal, rand } from './mid-mpt.ts';

const [choice, threadsArg, tArg, bArg, variant] = process.argv.slice(2);
const useDora = variant === 'dora';
const setsWeights = variant === 'lora' || variant === 'dora';
const shape = { ...MID, t: Number(tArg), b: Number(bArg) };
const threads = Number(threadsArg);
const backend = await initBackend(choice as BackendChoice, {
  numThreads: threads,
  numThreadsSource: 'the benchmark',
});
const { d, h, l, v, r } = shape;
const config = parseMptConfig(
  { d_model: d, n_heads: h, n_layers: l, vocab_size: v, max_seq_len: 2048, expansion_ratio: 4 },
  'bench mid config',
);
const lora = { r, loraAlpha: 16, loraDropout: 0, targetModules: ['Wqkv'], useDora };

async function loadMid(load8bit: boolean) {
  const model = await loadModel(config, midModelTensors(shape), { layout: backend.layout, load8bit });
  const targets = model.configureLora(lora);
  const lr = rand(3);
  const weights = new Map<string, Float32Array>();
  for (const x of targets) {
    weights.set(x.aName, normal(r * x.inFeatures, 1 / Math.sqrt(x.inFeatures), lr));
    weights.set(x.bName, normal(x.outFeatures * r, 0.01, lr));
    // DoRA's magnitude: any positive values cost the same (PEFT starts it at the rows' norms).
    if (useDora) weights.set(x.magnitudeName, new Float32Array(x.outFeatures).fill(1));
  }
  model.setLoraWeights(weights);
  return { model, weights };
}

/** GFLOP/s of [m,k]·[k,n], median of 4 runs after one warm-up. */
function matmulRate(m: number, k: number, n: number): number {
  const a = tf.randomNormal([m, k]);
  const w = tf.randomNormal([k, n]);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, w);
    c.dataSync();
    c.dispose();
    if (i > 0) times.push(performance.now() - t0);
  }
  tf.dispose([a, w]);
  times.sort((x, y) => x - y);
  return (2 * m * k * n) / ((((times[1] as number) + (times[2] as number)) / 2) * 1e6);
}

const { model, weights } = await loadMid(false);
const batch = midBatch(shape);
await computeLoraGradients(model, batch); // warm-up: weights packed, kernels chosen
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
say({ ready: true, summary: backend.summary, layout: backend.layout });
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'step') {
    const t0 = performance.now();
    if (setsWeights) model.setLoraWeights(weights); // a new step's weights (DoRA: its norms)
    const res = await computeLoraGradients(model, batch);
    say({ ms: performance.now() - t0, supervised: res.supervisedTokens });
  } else if (line === 'peak') {
    // The step's widest GEMM (up_proj: [B·T, D]·[D, 4D]) and a large square one.
    say({ shaped: matmulRate(shape.b * shape.t, d, 4 * d), square: matmulRate(2048, 2048, 2048) });
  } else if (line === 'extras') {
    const t1 = performance.now();
    await computeLoraGradients(model, batch, { gradientCheckpointing: true });
    const checkpointMs = performance.now() - t1;
    const { model: q } = await loadMid(true);
    await computeLoraGradients(q, batch);
    const t2 = performance.now();
    await computeLoraGradients(q, batch);
    const load8bitMs = performance.now() - t2;
    q.dispose();
    say({ checkpointMs, load8bitMs, numTensors: tf.memory().numTensors });
  } else {
    say({ error: `unknown request ${line}` });
  }
}
model.dispose();

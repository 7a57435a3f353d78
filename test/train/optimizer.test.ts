import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { adamwState, adamwStep } from '../../src/train/adamw.ts';
import { vectorChecksum } from '../../src/train/checksum.ts';
import { clipByGlobalNorm } from '../../src/train/clip.ts';
import { linearWarmupLr } from '../../src/train/lr-schedule.ts';
import { flatten, paramLayout, unflatten } from '../../src/train/param-layout.ts';

interface Fixture {
  base_lr: number;
  warmup_steps: number;
  total_steps: number;
  shapes: Record<string, number[]>;
  initial: Record<string, number[]>;
  steps: {
    lr: number;
    grad_norm: number;
    grads: Record<string, number[]>;
    params_after: Record<string, number[]>;
  }[];
}

// Made by tools/reference/make_train_fixtures.py with torch.optim.AdamW + transformers' scheduler.
const fx = JSON.parse(
  readFileSync(new URL('../fixtures/train/adamw.json', import.meta.url), 'utf8'),
) as Fixture;
const layout = paramLayout(Object.entries(fx.shapes).map(([name, shape]) => ({ name, shape })));
const toFlat = (r: Record<string, number[]>) =>
  flatten(layout, new Map(Object.entries(r).map(([k, v]) => [k, Float32Array.from(v)])));

describe('host optimizer against torch AdamW + HF linear warmup + clip_grad_norm_', () => {
  it('gives the learning rate transformers gives at every step, 0 on the first', () => {
    fx.steps.forEach((s, k) => {
      assert.ok(
        Math.abs(linearWarmupLr(fx.base_lr, k, fx.warmup_steps, fx.total_steps) - s.lr) < 1e-12,
        `step ${k}`,
      );
    });
  });

  it('measures the same gradient norm and clips like torch', () => {
    for (const s of fx.steps) {
      const g = toFlat(s.grads);
      const norm = clipByGlobalNorm(g, 1.0);
      assert.ok(Math.abs(norm - s.grad_norm) / s.grad_norm < 1e-5);
      if (s.grad_norm > 1) assert.ok(Math.abs(Math.hypot(...g) - 1) < 1e-5);
    }
  });

  it('ends every step with the parameters torch computed', () => {
    const state = adamwState(toFlat(fx.initial));
    fx.steps.forEach((s, k) => {
      const g = toFlat(s.grads);
      clipByGlobalNorm(g, 1.0);
      adamwStep(state, g, linearWarmupLr(fx.base_lr, k, fx.warmup_steps, fx.total_steps));
      const want = toFlat(s.params_after);
      for (let i = 0; i < want.length; i++) {
        assert.ok(
          Math.abs(state.params[i]! - want[i]!) <= 1e-6 + 1e-5 * Math.abs(want[i]!),
          `step ${k} index ${i}`,
        );
      }
    });
    assert.equal(state.step, fx.steps.length);
  });

  it('gives bitwise-identical replicas for the same gradients', () => {
    const a = adamwState(toFlat(fx.initial));
    const b = adamwState(toFlat(fx.initial));
    for (const s of fx.steps) {
      adamwStep(a, toFlat(s.grads), 1e-3);
      adamwStep(b, toFlat(s.grads), 1e-3);
    }
    assert.equal(vectorChecksum(a.params), vectorChecksum(b.params));
    assert.equal(vectorChecksum(a.expAvgSq), vectorChecksum(b.expAvgSq));
  });
});

describe('flat parameter layout', () => {
  it('gives zero-copy views that write through to the flat vector', () => {
    const flat = toFlat(fx.initial);
    const views = unflatten(layout, flat);
    views.get('b')![0] = 42;
    assert.equal(flat[15], 42);
  });

  it('names the missing tensor', () => {
    assert.throws(() => flatten(layout, new Map([['a', new Float32Array(15)]])), /missing parameter "b"/);
  });
});

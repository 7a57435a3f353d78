// `lora-mpt gpu-check` on this CPU-only machine: the GPU check itself must fail loudly with
// TensorFlow's reasons, and the same measurements on the CPU backend must run end to end (so the
// code a GPU node will run is exercised here: precision against float64, the matmul rate, training
// steps through the worker's compute path).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startLoraMpt } from '../support/processes.ts';

describe('lora-mpt gpu-check', () => {
  it('fails without a GPU, naming the binding and how to build it', async () => {
    const p = startLoraMpt('gpu-check', ['gpu-check']);
    assert.equal(await p.exited(), 1);
    const out = p.output();
    assert.match(out, /a GPU is required \(--backend tensorflow-gpu or LORA_MPT_REQUIRE_GPU=1\)/);
    assert.match(out, /binding: @tensorflow\/tfjs-node-gpu not installed/);
    assert.match(out, /gpu-check: FAILED: no GPU computes here/);
  });

  it('takes the same measurements on the CPU backend and says no GPU was checked', async () => {
    const small = ['--matmul_size', '256', '--d_model', '64', '--n_heads', '4', '--n_layers', '2'];
    const p = startLoraMpt('gpu-check', [
      'gpu-check',
      '--backend',
      'tensorflow',
      ...small,
      '--cutoff_len',
      '32',
      '--micro_batch_size',
      '2',
      '--steps',
      '2',
    ]);
    assert.equal(await p.exited(), 0, p.output());
    const out = p.output();
    assert.match(out, /NOT a GPU check/);
    const rel = Number(/max relative error (\S+) \(FP32/.exec(out)?.[1]);
    assert.ok(rel > 0 && rel < 1e-5, `float32 matmul error ${rel} against float64`);
    assert.match(out, /\d+\.\d+ TFLOP\/s/);
    assert.match(out, /step \d+\.\d ms \(median of 2\), \d+ tokens\/s/);
    assert.match(out, /gpu-check: passed \(measured on the CPU: no GPU was checked\)/);
  });

  it('the node script stops at once where nvidia-smi cannot run, saying so', () => {
    const script = fileURLToPath(new URL('../../scripts/gpu-check.sh', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-gpu-check-'));
    try {
      const r = spawnSync('bash', [script], {
        encoding: 'utf8',
        env: { ...process.env, PATH: '/usr/bin:/bin', GPU_CHECK_LOG: join(dir, 'gpu-check.log') },
      });
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /gpu-check: FAILED: nvidia-smi does not run/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// One GPU build path: the GPU image (Dockerfile, VARIANT=gpu) and scripts/gpu-check.sh build the
// binding with scripts/setup-tensorflow-gpu.sh and tell the loader where CUDA is with its
// --register-cuda-libs, never with steps of their own that could drift from it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const file = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const dockerfile = readFileSync(file('Dockerfile'), 'utf8');
const gpuCheck = readFileSync(file('scripts/gpu-check.sh'), 'utf8');
/** The shell a file runs, without its comments. */
const code = (text: string) =>
  text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n');

describe('the GPU build path', () => {
  it('is scripts/setup-tensorflow-gpu.sh in the Dockerfile and in gpu-check.sh, for the build and for the CUDA libraries', () => {
    for (const [name, text] of [
      ['Dockerfile', code(dockerfile)],
      ['scripts/gpu-check.sh', code(gpuCheck)],
    ] as const) {
      assert.match(
        text,
        /bash (\/app\/)?scripts\/setup-tensorflow-gpu\.sh(?! --register)/,
        `${name} builds with it`,
      );
      assert.match(text, /setup-tensorflow-gpu\.sh --register-cuda-libs/, `${name} registers CUDA with it`);
      assert.doesNotMatch(
        text,
        /ld\.so\.conf|ldconfig|cuda-library-path|deps\/nvidia/,
        `${name} has CUDA steps of its own`,
      );
    }
  });

  it('--register-cuda-libs refuses where the GPU binding was never built, naming how to build it', () => {
    const r = spawnSync('bash', [file('scripts/setup-tensorflow-gpu.sh'), '--register-cuda-libs'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /no built node_modules\/@tensorflow\/tfjs-node-gpu here: run scripts\/setup-tensorflow-gpu\.sh first/,
    );
    assert.equal(r.stdout, '');
  });
});

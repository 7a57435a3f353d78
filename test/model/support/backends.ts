// Runs a test suite once per backend: the same assertions must hold on the native `tensorflow`
// backend (tfjs-node, the product's default) and on `wasm` (its fallback), and on plain-JS `cpu`.
// Where the binding is not installed (scripts/setup.sh could not build it) the tensorflow suites are
// skipped and say why; with LORA_MPT_REQUIRE_TENSORFLOW=1 (CI, .ci/run) they run and fail instead.
import { before, describe } from 'node:test';
import { initBackend } from '../../../src/model/backend.ts';

export const TEST_BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type TestBackend = (typeof TEST_BACKENDS)[number];

/** Why the tensorflow suites cannot run here, or null when the binding starts. */
export const tensorflowUnavailable: string | null = await initBackend('tensorflow').then(
  () => null,
  (err: Error) => err.message,
);

/** The skip option of a tensorflow-only test: false where it runs (or must, in CI), else the reason. */
export function skipWithoutTensorflow(): string | false {
  if (tensorflowUnavailable === null || process.env.LORA_MPT_REQUIRE_TENSORFLOW === '1') return false;
  return `no tensorflow backend here (LORA_MPT_REQUIRE_TENSORFLOW=1 makes this a failure): ${tensorflowUnavailable}`;
}

export function describeOnBackends(title: string, body: (backend: TestBackend) => void): void {
  for (const backend of TEST_BACKENDS) {
    const skip = backend === 'tensorflow' ? skipWithoutTensorflow() : false;
    describe(`${title} [${backend}]`, { skip }, () => {
      before(async () => {
        const active = await initBackend(backend);
        if (active.name !== backend) throw new Error(`asked for ${backend}, got ${active.name}`);
      });
      body(backend);
    });
  }
}

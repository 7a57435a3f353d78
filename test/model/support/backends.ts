// Runs a test suite once per backend the CI has (wasm, cpu): the same assertions must hold on both.
import { before, describe } from 'node:test';
import { initBackend } from '../../../src/model/backend.ts';

export const TEST_BACKENDS = ['wasm', 'cpu'] as const;
export type TestBackend = (typeof TEST_BACKENDS)[number];

export function describeOnBackends(title: string, body: (backend: TestBackend) => void): void {
  for (const backend of TEST_BACKENDS) {
    describe(`${title} [${backend}]`, () => {
      before(async () => {
        const active = await initBackend(backend);
        if (active.name !== backend) throw new Error(`asked for ${backend}, got ${active.name}`);
      });
      body(backend);
    });
  }
}

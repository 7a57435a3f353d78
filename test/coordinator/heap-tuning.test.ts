// The coordinator tunes its process's collector at start-up (src/coordinator/heap-tuning.ts). The
// part a test can observe from JavaScript is the Buffer pool: after tuning, the frame grpc-js
// allocates for a ~6 KB micro-batch message comes from a shared pooled ArrayBuffer instead of one of
// its own. Checked in a fresh Node process, before and after, so this runner's process is untouched.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const TUNING = fileURLToPath(new URL('../../src/coordinator/heap-tuning.ts', import.meta.url));

const probe = `
const frames = () => {
  // grpc-js's frame of a micro-batch message: Buffer.allocUnsafe(message bytes + 5). The first may
  // still come from the pool made before (at most 8 KiB), so the second and third are compared.
  Buffer.allocUnsafe(6169);
  const a = Buffer.allocUnsafe(6169);
  const b = Buffer.allocUnsafe(6169);
  return { shared: a.buffer === b.buffer, offset: b.byteOffset - a.byteOffset };
};
const before = { pool: Buffer.poolSize, ...frames() };
const { tuneCoordinatorHeap, COORDINATOR_BUFFER_POOL_BYTES } = await import(${JSON.stringify(TUNING)});
tuneCoordinatorHeap();
tuneCoordinatorHeap();
const after = { pool: Buffer.poolSize, ...frames() };
console.log(JSON.stringify({ before, after, expected: COORDINATOR_BUFFER_POOL_BYTES }));
`;

describe("the coordinator's collector tuning", () => {
  it('makes micro-batch frames share pooled ArrayBuffers, which they do not by default', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
      encoding: 'utf8',
    });
    const { before, after, expected } = JSON.parse(out.trim().split('\n').at(-1)!);
    assert.equal(before.pool, 8192, "Node's default pool");
    assert.equal(before.shared, false, 'by default each 6 KB frame has an ArrayBuffer of its own');
    assert.equal(expected, 64 * 1024);
    assert.equal(after.pool, expected);
    assert.equal(after.shared, true, 'after tuning, consecutive frames share one pooled ArrayBuffer');
    // Node aligns pooled slices to 8 bytes: 6169 rounds up to 6176.
    assert.equal(after.offset, 6176);
  });
});

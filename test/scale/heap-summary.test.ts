import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { growthPerWorker, heapKinds } from '../../bench/support/heap-summary.ts';

// bench/coordinator-memory.ts reads what each added worker costs from two heap snapshots. Here V8
// writes real snapshots of a small isolate (a worker thread) holding a known number of objects of a
// class of its own, and the summary must find exactly those.
const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-heap-'));

/** A snapshot of a thread that holds `n` objects of class MarkedSessionState, each with an 8-byte field. */
function snapshotHolding(n: number): Promise<string> {
  const file = join(dir, `${n}.heapsnapshot`);
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { writeHeapSnapshot } = require('node:v8');
    class MarkedSessionState { constructor(i) { this.i = i + 0.5; } }
    globalThis.kept = Array.from({ length: workerData.n }, (_, i) => new MarkedSessionState(i));
    parentPort.postMessage(writeHeapSnapshot(workerData.file));`;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { n, file } });
    w.once('message', (f: string) => {
      void w.terminate();
      resolve(f);
    });
    w.once('error', reject);
  });
}

describe('heap snapshot summary', () => {
  let a: ReturnType<typeof heapKinds>;
  let b: ReturnType<typeof heapKinds>;
  before(async () => {
    a = heapKinds(await snapshotHolding(100));
    b = heapKinds(await snapshotHolding(500));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('counts the objects of a class by its constructor name', () => {
    assert.equal(a.get('object:MarkedSessionState')?.count, 100);
    assert.equal(b.get('object:MarkedSessionState')?.count, 500);
    assert.ok((b.get('object:MarkedSessionState')?.bytes ?? 0) > 0);
  });

  it('gives the growth per added worker between two snapshots, largest first', () => {
    // 400 more objects over 400 more "workers": one each, of the class's instance size.
    const rows = growthPerWorker(a, b, 100, 500, 1_000_000);
    const marked = rows.find((r) => r.kind === 'object:MarkedSessionState');
    assert.equal(marked?.count, 1);
    assert.equal(marked?.bytes, b.get('object:MarkedSessionState')!.bytes / 500);
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1]!.bytes >= rows[i]!.bytes);
  });
});

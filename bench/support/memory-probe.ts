// Loaded into a real `lora-mpt coordinator` process by bench/coordinator-memory.ts (`node --expose-gc
// --import tsx --import memory-probe.ts bin/lora-mpt.mjs coordinator ...`, an IPC channel open): on
// the bench's request it runs full garbage collections, answers with process.memoryUsage() and may
// write a heap snapshot. The coordinator's own code is untouched; the probe only reads.
import { writeHeapSnapshot } from 'node:v8';

interface MeasureRequest {
  readonly kind: 'measure';
  /** Write a heap snapshot to this path after collecting. */
  readonly snapshot?: string;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc || !process.send) {
  console.error('memory-probe: needs --expose-gc and an IPC channel (spawn with stdio "ipc")');
  process.exit(2);
}

process.on('message', (m: MeasureRequest) => {
  if (m?.kind !== 'measure') return;
  // Two passes: the first may only queue finalizers (gRPC and NATS objects with native parts).
  gc();
  gc();
  const usage = process.memoryUsage();
  // Peak resident set (KiB), before the snapshot: what the run needed at its worst so far.
  const peakRss = process.resourceUsage().maxRSS * 1024;
  const snapshot = m.snapshot === undefined ? undefined : writeHeapSnapshot(m.snapshot);
  process.send?.({ kind: 'memory', ...usage, peakRss, snapshot });
});
// The channel must not keep a coordinator alive whose run is over.
process.channel?.unref();

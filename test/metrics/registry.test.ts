// The process registry: Node's own metrics under their standard names (what stock Node.js
// dashboards query), and lora_mpt_build_info naming what runs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setBuildInfo } from '../../src/metrics/build-info.ts';
import { processRegistry } from '../../src/metrics/registry.ts';

describe('process registry', () => {
  it('exports process_* and nodejs_* under their standard names, none under lora_mpt_', async () => {
    const text = await processRegistry('worker', { worker: 'w1' }).metrics();
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    assert.doesNotMatch(text, /^# TYPE lora_mpt_(process|nodejs)_/m);
    assert.doesNotMatch(text, /^# TYPE nodejs_active_\w+_total /m, 'gauges named like counters are left out');
  });

  it('has one lora_mpt_build_info series of value 1, replaced when the process learns more', async () => {
    const registry = processRegistry('worker', { worker: 'w1' });
    setBuildInfo(registry, { version: '0.1.0', protocol: 4, backend: 'cpu', device: 'cpu' });
    setBuildInfo(registry, {
      version: '0.1.0',
      protocol: 4,
      backend: 'tensorflow',
      device: 'NVIDIA L4, compute capability 8.9, 22000 MB',
    });
    const lines = (await registry.metrics()).split('\n').filter((l) => l.startsWith('lora_mpt_build_info{'));
    assert.deepEqual(lines, [
      'lora_mpt_build_info{version="0.1.0",protocol="4",backend="tensorflow",device="NVIDIA L4, compute capability 8.9, 22000 MB",role="worker",worker="w1"} 1',
    ]);
  });
});

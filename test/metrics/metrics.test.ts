import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serveMetrics } from '../../src/metrics/http-server.ts';
import { createTrainingMetrics } from '../../src/metrics/training-metrics.ts';

describe('process metrics endpoint', () => {
  it('serves every DESIGN §7 metric under the lora_mpt_ prefix with the values set', async () => {
    const m = createTrainingMetrics('worker', { worker: 'w0' });
    m.loss.set(2.5);
    m.tokens.inc(1024);
    m.microBatches.inc({ event: 'requeued' });
    m.stepPhase.inc({ phase: 'allreduce' }, 0.25);
    m.markCheckpoint(Date.now() - 5000);
    const server = await serveMetrics({ registry: m.registry, port: 0, host: '127.0.0.1' });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.match(text, /^lora_mpt_loss\{role="worker",worker="w0"\} 2\.5$/m);
      assert.match(text, /^lora_mpt_tokens_total\{role="worker",worker="w0"\} 1024$/m);
      assert.match(text, /^lora_mpt_microbatches_total\{event="requeued",role="worker",worker="w0"\} 1$/m);
      assert.match(
        text,
        /^lora_mpt_step_phase_seconds_total\{phase="allreduce",role="worker",worker="w0"\} 0\.25$/m,
      );
      const age = Number(/^lora_mpt_checkpoint_age_seconds\{[^}]*\} ([\d.]+)$/m.exec(text)?.[1]);
      assert.ok(age >= 5 && age < 60, `checkpoint age ${age}`);
      for (const name of [
        'lora_mpt_eval_loss',
        'lora_mpt_learning_rate',
        'lora_mpt_grad_norm',
        'lora_mpt_step',
        'lora_mpt_step_duration_seconds',
        'lora_mpt_tokens_per_second',
        'lora_mpt_mfu',
        'lora_mpt_workers',
        'lora_mpt_allreduce_bytes_total',
        'lora_mpt_allreduce_duration_seconds',
        'lora_mpt_replica_mismatches_total',
        'lora_mpt_backend_memory_bytes',
        'lora_mpt_process_resident_memory_bytes',
        'lora_mpt_nodejs_heap_size_used_bytes',
      ]) {
        assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
      }
    } finally {
      await server.close();
    }
  });

  it('answers /healthz with 200, or 503 and the reason', async () => {
    let reason: string | undefined;
    const m = createTrainingMetrics('coordinator');
    const server = await serveMetrics({
      registry: m.registry,
      port: 0,
      host: '127.0.0.1',
      unhealthyReason: () => reason,
    });
    try {
      assert.equal((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status, 200);
      reason = 'no heartbeat from the coordinator for 30 s';
      const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      assert.equal(res.status, 503);
      assert.match(await res.text(), /no heartbeat/);
    } finally {
      await server.close();
    }
  });
});

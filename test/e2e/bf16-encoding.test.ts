import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { assertSameAdapter } from '../support/adapters.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// The coordinator's all-reduce wire options, in real runs against one single-process finetune.
// --allreduce_encoding bf16 rounds every gradient on the wire to bfloat16: the run must still finish
// (the coordinator's observer and both workers use the same encoding, or every round is refused), and
// its adapter must differ from single-process finetune's by about what bf16 rounding of the gradient
// moves it: measured, reported, and bounded. Float32 equality is distributed-equivalence.test.ts.
// --allreduce_frame_bytes cuts every frame to that size on every participant: a NATS client that hears
// every subject sees no larger message and full ones, and the adapter is finetune's within 1e-5 (the
// equivalence criterion); a size above the coordinator's server's max_payload is refused before any
// worker joins, and above a worker's server's when that worker joins.
const training = (run: TinyRun, out: string) =>
  runArgs(run, out, {
    batch_size: 8,
    micro_batch_size: 2,
    max_steps: 3,
    cutoff_len: 48,
    val_set_size: 0,
    save_steps: 3,
    warmup_steps: 1,
    learning_rate: '1e-2',
    lora_target_modules: '[Wqkv,out_proj]',
  });

describe('all-reduce wire options in a real run', () => {
  let run: TinyRun;
  let nats: NatsServer;
  before(async () => {
    run = await tinyRun([200, 320]);
    nats = await startNats({ maxPayload: 64 * 1024 });
    const ft = startLoraMpt('finetune', ['finetune', ...training(run, join(run.dir, 'finetune'))]);
    assert.equal(await ft.exited(), 0, ft.output());
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  it('trains 2 workers to an adapter within bf16 rounding of finetune’s, not equal to it', async (t) => {
    const out = join(run.dir, 'bf16');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: training(run, out),
      workers: ['w0', 'w1'],
      coordinatorFlags: ['--allreduce_encoding', 'bf16'],
    });
    try {
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      for (const w of d.workers) assert.equal(await w.exited(), 0, w.output());
    } finally {
      await d.stop();
    }
    // bf16 keeps 8 significant bits (relative rounding at most 2^-8 ≈ 3.9e-3 per value); through AdamW's
    // normalisation 3 steps kept it at 6.3e-4 and 8.9e-4 per tensor (2026-12-05); the bound leaves 5x.
    const diff = await assertSameAdapter(join(run.dir, 'finetune'), out, 5e-3);
    t.diagnostic(
      `bf16 vs float32 finetune: largest per-tensor ||a-b||/||a|| ${diff.relative.toExponential(2)}; ` +
        `largest element difference / max|a| ${diff.elementwise.toExponential(2)}`,
    );
    assert.ok(diff.relative > 1e-6, `bf16 left the adapter equal to float32's (${diff.relative})`);
  });

  it('cuts every frame to --allreduce_frame_bytes and trains 2 workers to finetune’s adapter', async (t) => {
    // The tiny model's shards are ~6 KB, one frame each at the server's 64 KiB: 4 KiB cuts them.
    const frameBytes = 4096;
    const out = join(run.dir, 'frames');
    // Hears every subject of the server: the workers' and the coordinator's frames among them.
    const listener = await connect({ servers: nats.url });
    const sizes: number[] = [];
    listener.subscribe('lora.>', {
      callback: (_err, msg) => {
        sizes.push(msg.data.length);
      },
    });
    await listener.flush();
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: training(run, out),
      workers: ['w0', 'w1'],
      coordinatorFlags: ['--allreduce_frame_bytes', String(frameBytes)],
    });
    try {
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      for (const w of d.workers) assert.equal(await w.exited(), 0, w.output());
    } finally {
      await d.stop();
      await listener.close();
    }
    const largest = Math.max(...sizes);
    const full = sizes.filter((n) => n > frameBytes - 8).length;
    t.diagnostic(`${sizes.length} messages on lora.>, largest ${largest} bytes, ${full} full frames`);
    assert.ok(largest <= frameBytes, `a message of ${largest} bytes, above ${frameBytes}`);
    assert.ok(full > 0, `no frame near ${frameBytes} bytes: the gradient was never cut at the flag's size`);
    const diff = await assertSameAdapter(join(run.dir, 'finetune'), out, 1e-5);
    t.diagnostic(
      `4 KiB frames vs finetune: largest per-tensor ||a-b||/||a|| ${diff.relative.toExponential(2)}`,
    );
  });

  it('refuses --allreduce_frame_bytes above the NATS server’s max_payload, naming both', async () => {
    const out = join(run.dir, 'too-large');
    const c = startLoraMpt('coordinator', [
      'coordinator',
      ...training(run, out),
      '--listen',
      '127.0.0.1:0',
      '--nats',
      nats.url,
      '--metrics_port',
      '0',
      '--insecure',
      '--allreduce_frame_bytes',
      String(128 * 1024),
    ]);
    assert.equal(await c.exited(), 2, c.output());
    assert.match(
      c.output(),
      /--allreduce_frame_bytes 131072 exceeds the max_payload of the NATS server at nats:\/\/[\d.:]+ \(65536 bytes\)/,
    );
  });

  it('a worker whose NATS server takes smaller messages than the run’s frames refuses the run, naming both', async () => {
    const small = await startNats({ maxPayload: 32 * 1024, prefer: 'process' });
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: training(run, join(run.dir, 'small-server')),
      workers: [],
      minWorkers: 1,
      coordinatorFlags: ['--allreduce_frame_bytes', String(64 * 1024)],
    });
    try {
      const w = d.startWorker('w-small', ['--nats', small.url]);
      assert.notEqual(await w.exited(), 0, w.output());
      assert.match(
        w.output(),
        /the run's all-reduce frames \(coordinator --allreduce_frame_bytes 65536\) exceed this worker's NATS server's max_payload \(32768 bytes\)/,
      );
    } finally {
      await d.stop();
      await small.stop();
    }
  });
});

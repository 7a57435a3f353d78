// `lora-mpt coordinator`: owns a distributed run (DESIGN.md §2). Prepares the data plan and the
// adapter replica (never the model: no TensorFlow.js in this process), serves workers over gRPC,
// observes each step's all-reduce over NATS as a replica, checkpoints, and writes the adapter.
// Restarted with the same flags it resumes from the newest checkpoint in --output_dir.

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect } from '@nats-io/transport-node';
import type { Counter } from 'prom-client';
import { observeAllReduce } from '../collective/index.ts';
import { startCoordinatorServer } from '../coordinator/grpc-server.ts';
import { StepDriver } from '../coordinator/step-driver.ts';
import { hubOptionsFromEnv } from '../hub/hf-cache.ts';
import { Tokenizer } from '../data/tokenizer.ts';
import { serveMetrics } from '../metrics/http-server.ts';
import { createTrainingMetrics } from '../metrics/training-metrics.ts';
import { openCheckpoint } from '../checkpoint/checkpoint.ts';
import { resolveModel } from '../hub/models.ts';
import { ADAPTER_SAFETENSORS, newLoraConfig } from '../checkpoint/peft-adapter.ts';
import { adapterLayout } from '../train/adapter-layout.ts';
import { removeStaleTemporaries } from '../train/atomic-write.ts';
import { listCheckpoints } from '../train/checkpoint-dirs.ts';
import { checkpointKeeperFor } from '../train/checkpoint-keeper.ts';
import { linearWarmupLr } from '../train/lr-schedule.ts';
import { MetricsLog } from '../train/metrics-log.ts';
import type { RunConfig } from '../train/run-config.ts';
import { prepareRunData } from '../train/run-data.ts';
import { startReplica, writeRunResult } from '../train/run-start.ts';
import type { Command } from './command.ts';
import { type FlagSpecs, helpText, parseFlags, UsageError } from './flags.ts';
import { trainingFlags } from './training-flags.ts';
import { trainingSettings } from './training-settings.ts';

export const coordinatorFlags = {
  ...trainingFlags,
  listen: {
    kind: 'string',
    default: '0.0.0.0:50051',
    help: 'host:port of the gRPC endpoint workers connect to.',
  },
  nats: { kind: 'string', default: 'nats://127.0.0.1:4222', help: 'NATS server URL(s), comma-separated.' },
  min_workers: {
    kind: 'int',
    default: 1,
    min: 1,
    help: 'Replicas needed to run a step; below it the run pauses (and says so) until workers come back.',
  },
  metrics_port: {
    kind: 'int',
    default: 9400,
    min: 0,
    help: 'Port of /metrics and /healthz (0: a free port).',
  },
  run_id: {
    kind: 'string',
    help: 'Run id (letters, digits, - and _). Default: from the checkpoint when resuming, else random.',
  },
  heartbeat_timeout_ms: {
    kind: 'int',
    default: 60_000,
    min: 1000,
    help: 'A worker silent this long is lost; its micro-batches go to the others. Must exceed the longest micro-batch compute: a worker computes on its main thread and cannot send heartbeats meanwhile (docs/faults.md).',
  },
  microbatch_timeout_ms: {
    kind: 'int',
    default: 0,
    min: 0,
    help: 'A worker that has not reported a micro-batch this long after it was dealt is lost (its work goes to the others), even while its heartbeats flow. Must cover --max_in_flight micro-batch computes. 0: off.',
  },
  allreduce_algorithm: {
    kind: 'string',
    default: 'shard-owner',
    help: 'Gradient all-reduce over NATS: shard-owner (as fast or faster than ring in our measurements, fewer bytes into the server; docs/collective.md) or ring.',
  },
  allreduce_timeout_ms: {
    kind: 'int',
    default: 120_000,
    min: 100,
    help: 'Deadline of one all-reduce round.',
  },
} as const satisfies FlagSpecs;

export async function runCoordinator(argv: readonly string[]): Promise<number> {
  const f = parseFlags(coordinatorFlags, argv);
  const s = trainingSettings(f);
  if (f.run_id !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(f.run_id)) {
    throw new UsageError(
      `--run_id ${f.run_id}: use 1-64 letters, digits, "-" or "_" (it names NATS subjects)`,
    );
  }
  if (f.allreduce_algorithm !== 'shard-owner' && f.allreduce_algorithm !== 'ring') {
    throw new UsageError(`--allreduce_algorithm ${f.allreduce_algorithm}: expected shard-owner or ring`);
  }
  const log = (line: string) => console.log(`[coordinator] ${line}`);
  for (const w of s.warnings) log(`warning: ${w}`);

  const model = await resolveModel(
    s.baseModel,
    process.env,
    'main',
    hubOptionsFromEnv(process.env, homedir()),
  );
  const tokenizerPath = s.tokenizer ?? model.tokenizerJson;
  if (!tokenizerPath)
    throw new UsageError(`--base_model ${s.baseModel}: no tokenizer.json in ${model.dir}; pass --tokenizer`);
  const ckpt = await openCheckpoint(model.dir);
  const lora = {
    r: s.loraR,
    loraAlpha: s.loraAlpha,
    loraDropout: s.loraDropout,
    targetModules: s.loraTargetModules,
  };
  const { layout, targets } = adapterLayout(ckpt.config, lora);
  const data = await prepareRunData({ ...s, tokenizer: Tokenizer.fromFile(tokenizerPath), log });
  await mkdir(s.outputDir, { recursive: true });
  // A crash mid-write (SIGKILL while saving a checkpoint) leaves only temporaries; clear them.
  const stale = await removeStaleTemporaries(s.outputDir);
  if (stale.length > 0)
    log(`removed ${stale.length} unfinished write(s) of an interrupted run: ${stale.join(', ')}`);

  // Resume: an explicit --resume_from_checkpoint, else the newest checkpoint of this same plan.
  const existing = await listCheckpoints(s.outputDir);
  const resumeDir =
    s.resumeFromCheckpoint === 'latest' || (s.resumeFromCheckpoint === undefined && existing.length > 0)
      ? existing.at(-1)?.path
      : s.resumeFromCheckpoint;
  const { replica, resumed } = await startReplica({
    from: resumeDir ? { kind: 'exact', dir: resumeDir } : { kind: 'init' },
    layout,
    targets,
    r: s.loraR,
    seed: s.seed,
    planFingerprint: data.planFingerprint,
  });
  const runId = f.run_id ?? resumed?.lora_mpt.run_id ?? `run-${randomBytes(4).toString('hex')}`;
  if (resumed) log(`resuming run ${runId} from ${resumeDir} at step ${replica.step}`);

  const run: RunConfig = {
    runId,
    baseModel: s.baseModel,
    loraR: s.loraR,
    loraAlpha: s.loraAlpha,
    loraDropout: s.loraDropout,
    loraTargetModules: s.loraTargetModules,
    seed: s.seed,
    maxGradNorm: 1.0,
    gradientCheckpointing: s.gradientCheckpointing,
    load8bit: s.load8bit,
    allReduceAlgorithm: f.allreduce_algorithm,
    allReduceTimeoutMs: f.allreduce_timeout_ms,
  };
  const loraConfig = newLoraConfig({ ...lora, baseModelNameOrPath: s.baseModel });
  const metrics = createTrainingMetrics('coordinator', { run_id: runId });
  const metricsLog = new MetricsLog(join(s.outputDir, 'metrics.jsonl'));
  const nc = await connect({
    servers: f.nats.split(','),
    name: `lora-mpt-coordinator-${runId}`,
    maxReconnectAttempts: -1,
  });
  const total = data.plan.totalSteps;
  const checkpoints = checkpointKeeperFor(s, data, { runId, loraConfig, replica, resumed });
  const started = Date.now();
  let tokensSeen = 0;

  const driver = new StepDriver({
    runId,
    modelFingerprint: ckpt.fingerprint,
    totalSteps: total,
    minWorkers: f.min_workers,
    maxGradNorm: run.maxGradNorm,
    evalSteps: s.evalSteps,
    replica,
    microBatches: (step) => data.plan.microBatchesForStep(step),
    evalMicroBatches: data.evalBatches,
    learningRate: (done) => linearWarmupLr(s.learningRate, done, s.warmupSteps, total),
    observerId: 'coordinator',
    algorithm: run.allReduceAlgorithm,
    // Seconds since 2020 (fits a u32 for a century): a restarted coordinator's generations start
    // above its predecessor's, so no NATS subject of an abandoned round is ever reused.
    firstGeneration: Math.max(1, Math.floor((Date.now() - Date.UTC(2020, 0, 1)) / 1000)),
    observeReduce: (step, generation, members, signal) =>
      observeAllReduce({
        nc,
        runId,
        step,
        generation,
        members,
        observers: ['coordinator'],
        self: 'coordinator',
        length: layout.size,
        timeoutMs: run.allReduceTimeoutMs,
        algorithm: run.allReduceAlgorithm,
        signal,
      }),
    log,
    onMismatch: () => metrics.replicaMismatches.inc(),
    onMicroBatches: (event, n) => metrics.microBatches.inc({ event }, n),
    async onCommit(c) {
      const done = c.step + 1;
      tokensSeen += data.plan.microBatchesForStep(c.step).reduce((n, m) => n + m.rows * m.seqLen, 0);
      const elapsed = (Date.now() - started) / 1000;
      const split = [...c.microBatchesByWorker].map(([w, n]) => `${w}:${n}`).join(' ');
      // The ledger passed its audit: every planned micro-batch counted exactly once.
      const ledger = c.ledger.summary();
      const entry = {
        step: done,
        loss: c.loss,
        learning_rate: c.learningRate,
        grad_norm: c.gradNorm,
        epoch: done / data.plan.stepsPerEpoch,
        supervised_tokens: c.tokens,
        generation: c.generation,
      };
      checkpoints.history.push(entry);
      await metricsLog.append({
        ...entry,
        micro_batches_by_worker: split,
        tokens_per_second: tokensSeen / elapsed,
        ledger_planned: ledger.planned,
        ledger_counted: ledger.counted,
        ledger_assigned: ledger.assigned,
        ledger_requeued: ledger.requeued.map((r) => `${r.id}@${r.worker}`).join(' '),
        ledger_ignored: ledger.ignored.length,
        // Run totals so far, read back from the Prometheus counters (tests check them from outside).
        replica_mismatches: await counterValue(metrics.replicaMismatches),
        microbatches_requeued: await counterValue(metrics.microBatches, { event: 'requeued' }),
      });
      metrics.loss.set(c.loss);
      metrics.learningRate.set(c.learningRate);
      metrics.gradNorm.set(c.gradNorm);
      metrics.step.set(done);
      metrics.tokensPerSecond.set(tokensSeen / elapsed);
      log(
        `ledger of step ${done}: ${ledger.counted} of ${ledger.planned} micro-batches counted once (audit ok), ` +
          `${ledger.assigned} assignments, requeued [${ledger.requeued.map((r) => `${r.id}@${r.worker}`).join(' ')}], ` +
          `ignored [${ledger.ignored.map((r) => `${r.id}@${r.worker}`).join(' ')}]`,
      );
      log(
        `step ${done}/${total} loss ${c.loss.toFixed(4)} lr ${c.learningRate.toExponential(2)} grad_norm ${c.gradNorm.toFixed(3)} micro-batches ${split}`,
      );
    },
    async onEval(step, loss, tokens) {
      checkpoints.recordEval(step + 1, loss, tokens);
      metrics.evalLoss.set(loss);
      await metricsLog.append({ step: step + 1, eval_loss: loss, eval_tokens: tokens });
      log(`step ${step + 1}: eval loss ${loss.toFixed(4)} over ${tokens} tokens`);
    },
    async afterStep(done) {
      const saved = await checkpoints.afterStep(done);
      if (saved) {
        metrics.markCheckpoint();
        log(`saved ${saved.path}`);
      }
    },
  });

  const server = await startCoordinatorServer({
    listen: f.listen,
    driver,
    runId,
    runConfigJson: JSON.stringify(run),
    modelFingerprint: ckpt.fingerprint,
    heartbeatIntervalMs: Math.min(5000, Math.floor(f.heartbeat_timeout_ms / 4)),
    heartbeatTimeoutMs: f.heartbeat_timeout_ms,
    microBatchTimeoutMs: f.microbatch_timeout_ms,
    log,
  });
  const http = await serveMetrics({ registry: metrics.registry, port: f.metrics_port });
  const gauge = setInterval(() => {
    for (const st of ['loading', 'ready', 'synced'] as const)
      metrics.workers.set({ state: st }, driver.members.count(st));
  }, 1000);
  gauge.unref();
  log(
    `run ${runId}: listening on ${f.listen.replace(/:\d+$/, '')}:${server.port} (gRPC), metrics on :${http.port}, ` +
      `${total} steps, waiting for ${f.min_workers} worker(s)`,
  );
  const stop = () => driver.stop('the coordinator was asked to stop');
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    await driver.done;
    log(await writeRunResult(s.outputDir, checkpoints, loraConfig, replica));
    log(`done: ${replica.step} steps; adapter: ${resolve(s.outputDir, ADAPTER_SAFETENSORS)}`);
    return 0;
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    clearInterval(gauge);
    await new Promise((r) => setTimeout(r, 200)); // let Finished reach the workers
    await server.close();
    await http.close();
    await nc.close();
  }
}

async function counterValue(
  c: Counter<string>,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const { values } = await c.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return hit?.value ?? 0;
}

export const coordinatorCommand: Command = {
  name: 'coordinator',
  summary: 'own a distributed run: data plan, gRPC for workers, checkpoints (no model in this process)',
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      console.log(
        helpText(
          'lora-mpt coordinator --base_model DIR|HUB_ID [training flags] [--listen H:P] [--nats URL] [--min_workers N]',
          'Runs the training of `lora-mpt finetune` across `lora-mpt worker` processes; takes every finetune flag.',
          coordinatorFlags,
        ),
      );
      return 0;
    }
    const code = await runCoordinator(argv);
    // Everything is written and closed. A hung worker's half-closed TCP connection (it cannot read
    // our FIN) must not keep a finished coordinator alive: exit if the event loop has not drained.
    setTimeout(() => process.exit(code), 3_000).unref();
    return code;
  },
};

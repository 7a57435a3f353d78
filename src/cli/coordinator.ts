// `lora-mpt coordinator`: owns a distributed run (DESIGN.md §2). Prepares the data plan and the
// adapter replica (never the model: no TensorFlow.js in this process), serves workers over gRPC,
// observes each step's all-reduce over NATS as a replica, checkpoints, and writes the adapter.
// Restarted with the same flags it resumes from the newest checkpoint in --output_dir.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import {
  algorithmSummaries,
  DEFAULT_ALGORITHM,
  DEFAULT_GRADIENT_ENCODING,
  FRAME_OVERHEAD,
  GRADIENT_ENCODINGS,
  isAllReduceAlgorithm,
  isGradientEncoding,
  observeAllReduce,
  prepareFrameKey,
  unknownAlgorithm,
} from '../collective/index.ts';
import { limitsForOpenFiles } from '../coordinator/connection-gate.ts';
import { CONTRIBUTION_NORM_FACTOR } from '../coordinator/contribution-check.ts';
import { startCoordinatorServer } from '../coordinator/grpc-server.ts';
import { tuneCoordinatorHeap } from '../coordinator/heap-tuning.ts';
import { RunStatus } from '../coordinator/run-status.ts';
import { statusPages } from '../coordinator/status-pages.ts';
import { StepDriver } from '../coordinator/step-driver.ts';
import { type TappedEvent, tapEvents } from '../events/tap.ts';
import { setBuildInfo } from '../metrics/build-info.ts';
import { createCoordinatorMetrics } from '../metrics/coordinator-metrics.ts';
import { coordinatorSendLimit } from '../protocol/channel.ts';
import { publicKeyFromRaw, rawPublicKey } from '../protocol/frame-evidence.ts';
import { PROTOCOL_VERSION } from '../protocol/handshake.ts';
import { listCheckpoints } from '../train/checkpoint-dirs.ts';
import { adoptResumedLora } from './adopt-resumed-lora.ts';
import { type Command, flagCommand } from './command.ts';
import { type FlagSpecs, type ParsedFlags, UsageError } from './flags.ts';
import { eventsFromFlags, logFlags } from './log-flags.ts';
import { serveMetricsOn } from './metrics-port.ts';
import { sayOpenFileLimit } from './open-files.ts';
import { refusedFrameReporter } from './refused-frames.ts';
import { RehearsalReport } from './rehearsal-report.ts';
import { driverOptionsOf, driveToEnd, endIfAlreadyFinished, prepareRun, runConfigOf } from './run-setup.ts';
import {
  coordinatorSecurityFlags,
  natsSecurityOf,
  serverSecurityOf,
  warnIfInsecure,
} from './security-flags.ts';
import { trainingFlags } from './training-flags.ts';
import { trainingSettings } from './training-settings.ts';
import { packageVersion } from './version.ts';

/** Smallest --allreduce_frame_bytes other than 0: below it a round is mostly headers and messages. */
const MIN_FRAME_BYTES = 4096;

export const coordinatorFlags = {
  ...trainingFlags,
  ...logFlags,
  ...coordinatorSecurityFlags,
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
    min: 0,
    help: 'Port of the status page (/, data at /api/status), /metrics and /healthz (0: any free port). Default 9400, or the next free one when another process holds it.',
  },
  metrics_host: {
    kind: 'string',
    help: 'Address the status page, /metrics and /healthz listen on. Default: the --listen host (0.0.0.0 in the Helm chart, so Prometheus can scrape it).',
  },
  run_id: {
    kind: 'string',
    help: 'Run id (letters, digits, - and _). Default: from the checkpoint when resuming, else random.',
  },
  heartbeat_timeout_ms: {
    kind: 'int',
    default: 60_000,
    min: 1000,
    help: 'A worker silent this long is lost; its micro-batches go to the others. Workers compute on a worker thread and keep sending heartbeats during a micro-batch, so this need not exceed the longest micro-batch (docs/faults.md).',
  },
  microbatch_timeout_ms: {
    kind: 'int',
    default: 0,
    min: 0,
    help: 'A worker that has not reported a micro-batch this long after it was dealt is lost (its work goes to the others), even while its heartbeats flow. 0 (default): derived from the run: 10x the 90th percentile of its measured micro-batch times (deal to report), at least --heartbeat_timeout_ms; 10x --heartbeat_timeout_ms until a first micro-batch is measured.',
  },
  max_workers: {
    kind: 'int',
    default: 256,
    min: 1,
    help: 'Most workers connected at once; further Hellos are refused (the worker retries later).',
  },
  max_credits_per_worker: {
    kind: 'int',
    default: 8,
    min: 1,
    help: 'Most micro-batches one worker may hold at once, whatever --max_in_flight it declares.',
  },
  allreduce_algorithm: {
    kind: 'string',
    default: DEFAULT_ALGORITHM,
    help: `Gradient all-reduce over NATS, one of: ${algorithmSummaries()}. The default, ${DEFAULT_ALGORITHM}, was as fast or faster in our measurements (docs/collective.md).`,
  },
  allreduce_encoding: {
    kind: 'string',
    default: DEFAULT_GRADIENT_ENCODING,
    help:
      `How gradients travel between workers, one of: ${GRADIENT_ENCODINGS.join(', ')}. bf16 sends half the bytes, ` +
      'rounded to bfloat16 (nearest even) on the wire, so N workers no longer equal one bitwise (docs/collective.md).',
  },
  allreduce_frame_bytes: {
    kind: 'int',
    default: 0,
    min: 0,
    help:
      `Largest all-reduce frame in bytes, the ${FRAME_OVERHEAD} bytes of header and tag included; every worker and the coordinator use it (sent in the Welcome), and it may not exceed any of their NATS servers' max_payload. ` +
      `0: the NATS server's max_payload (1 MiB unless configured). Smaller frames cross a slow link sooner, so the next hop can forward them sooner (docs/scale.md: hierarchical at 8 x 4 on 5 Mbit/s links went from 1.31-1.34x to 1.19-1.21x its link bound with 32 KiB frames), at the cost of more messages per round. At least ${MIN_FRAME_BYTES} when not 0.`,
  },
  allreduce_timeout_ms: {
    kind: 'int',
    default: 120_000,
    min: 100,
    help: 'Deadline of one all-reduce round.',
  },
  contribution_norm_factor: {
    kind: 'float',
    default: CONTRIBUTION_NORM_FACTOR,
    min: 0,
    help: `With --allreduce_algorithm shard-owner: refuse a worker's contribution to a step when its norm per supervised token, as the shard owners measured it, exceeds this many times the median of the other workers'; the step commits without it, its micro-batches are recomputed by others and it is quarantined (docs/security.md). 0: off (a contribution larger than the norms its worker reported is refused whatever this is). Default ${CONTRIBUTION_NORM_FACTOR}.`,
  },
} as const satisfies FlagSpecs;

export async function runCoordinator(f: ParsedFlags<typeof coordinatorFlags>): Promise<number> {
  const s = await adoptResumedLora(trainingSettings(f));
  if (f.run_id !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(f.run_id)) {
    throw new UsageError(
      `--run_id ${f.run_id}: use 1-64 letters, digits, "-" or "_" (it names NATS subjects)`,
    );
  }
  if (!isAllReduceAlgorithm(f.allreduce_algorithm)) {
    throw new UsageError(unknownAlgorithm('--allreduce_algorithm', f.allreduce_algorithm));
  }
  const algorithm = f.allreduce_algorithm;
  if (!isGradientEncoding(f.allreduce_encoding)) {
    throw new UsageError(
      `--allreduce_encoding ${JSON.stringify(f.allreduce_encoding)}: use one of ${GRADIENT_ENCODINGS.join(', ')}`,
    );
  }
  const encoding = f.allreduce_encoding;
  if (f.allreduce_frame_bytes !== 0 && f.allreduce_frame_bytes < MIN_FRAME_BYTES) {
    throw new UsageError(
      `--allreduce_frame_bytes ${f.allreduce_frame_bytes}: use 0 (the NATS server's max_payload) or at least ${MIN_FRAME_BYTES}`,
    );
  }
  const security = serverSecurityOf(f, process.env);
  const natsSecurity = natsSecurityOf(f, process.env);
  // The status page (/) shows the events the log does, from the first one on; the metrics (and a
  // rehearsal's report) follow them too once the run is prepared. One tap hands each event to all
  // of them: micro-batches dealt and counted are events, so this runs at every one (docs/scale.md).
  const status = new RunStatus();
  const followers: ((e: TappedEvent) => void)[] = [status.record];
  const follow = (e: TappedEvent): void => {
    for (const f of followers) f(e);
  };
  const log = eventsFromFlags(f, { label: 'coordinator', stepEvery: s.loggingSteps });
  const events = tapEvents(log, follow);
  warnIfInsecure(security, events, 'coordinator');
  const openFiles = sayOpenFileLimit(events);
  // Resume: an explicit --resume_from_checkpoint, else the newest checkpoint of this same plan.
  const run = await prepareRun(s, events, {
    async startFrom(outputDir) {
      const existing = await listCheckpoints(outputDir);
      // The newest checkpoint that loads: one a crash or a full disk left unreadable is skipped.
      if (
        s.resumeFromCheckpoint === 'latest' ||
        (s.resumeFromCheckpoint === undefined && existing.length > 0)
      )
        return existing.length > 0
          ? { kind: 'newest', dirs: existing.map((c) => c.path).reverse() }
          : { kind: 'init' };
      return s.resumeFromCheckpoint ? { kind: 'exact', dir: s.resumeFromCheckpoint } : { kind: 'init' };
    },
    runId: (resumed) => f.run_id ?? resumed ?? `run-${randomBytes(4).toString('hex')}`,
  });
  const metrics = createCoordinatorMetrics(run.runId);
  setBuildInfo(metrics.registry, {
    version: packageVersion(),
    protocol: PROTOCOL_VERSION,
    backend: 'none',
    device: 'none',
  });
  // A synthetic model admits synthetic workers only: the run is a rehearsal, timed step by step.
  const rehearsal = run.model.weightless
    ? new RehearsalReport(
        {
          numEpochs: s.numEpochs,
          stepsPerEpoch: run.data.plan.stepsPerEpoch,
          evalSteps: s.evalSteps,
          evalMicroBatches: run.data.evalBatches.length,
        },
        s.outputDir,
      )
    : undefined;
  // The metrics follow the run's events as the status page does: the same calls make both.
  followers.push((e) => metrics.record(e));
  if (rehearsal) followers.push(rehearsal.record);
  const ev = tapEvents(log.child({ run_id: run.runId }), follow);
  // The run's all-reduce frame key: every NATS frame carries a MAC (keyed BLAKE3) under it (docs/security.md).
  // New with each coordinator process; workers get it in their Welcome, over authenticated gRPC.
  const frameKey = randomBytes(32);
  await prepareFrameKey(frameKey); // the coordinator checks frames and evidence with it
  const total = run.data.plan.totalSteps;
  status.begin({ runId: run.runId, startStep: run.startStep, totalSteps: total });
  const guard = metrics.security;
  const refusedFrame = refusedFrameReporter(guard, ev);
  metrics.started({
    step: run.startStep,
    totalSteps: total,
    minWorkers: f.min_workers,
    saveSteps: s.saveSteps,
  });
  const { journal, options } = driverOptionsOf(run, s, ev);
  if (await endIfAlreadyFinished(run, s, journal, ev)) return 0;
  const config = runConfigOf(run, s, {
    algorithm,
    encoding,
    timeoutMs: f.allreduce_timeout_ms,
    frameBytes: f.allreduce_frame_bytes,
  });
  const nc = await connect({
    servers: f.nats.split(','),
    name: `lora-mpt-coordinator-${run.runId}`,
    ...natsSecurity,
    maxReconnectAttempts: -1,
  });
  const serverMax = nc.info?.max_payload;
  if (config.allReduceFrameBytes > 0 && serverMax !== undefined && config.allReduceFrameBytes > serverMax) {
    await nc.close();
    throw new UsageError(
      `--allreduce_frame_bytes ${config.allReduceFrameBytes} exceeds the max_payload of the NATS server at ${f.nats} (${serverMax} bytes): lower it, or raise max_payload`,
    );
  }
  const observerKeys = generateKeyPairSync('ed25519');
  const driver = new StepDriver({
    ...options,
    minWorkers: f.min_workers,
    observerId: 'coordinator',
    algorithm,
    // Only shard owners see every contributor's part: the other algorithms measure nothing.
    contributionNormFactor: algorithm === 'shard-owner' ? f.contribution_norm_factor : undefined,
    // Seconds since 2020 (fits a u32 for a century): a restarted coordinator's generations start
    // above its predecessor's, so no NATS subject of an abandoned round is ever reused.
    firstGeneration: Math.max(1, Math.floor((Date.now() - Date.UTC(2020, 0, 1)) / 1000)),
    // The observer signs its frames (ready, abort) like every worker; members check them.
    observerPublicKey: rawPublicKey(observerKeys.publicKey),
    // A blame that comes with a frame its accused signed, of one of this run's rounds, is proven.
    frameRules: { runId: run.runId, frameKey, encoding: config.allReduceEncoding, length: run.layout.size },
    observeReduce: (step, generation, members, signal, nodes, keys) =>
      observeAllReduce({
        nc,
        runId: run.runId,
        step,
        generation,
        members,
        nodes,
        observers: ['coordinator'],
        self: 'coordinator',
        length: run.layout.size,
        timeoutMs: config.allReduceTimeoutMs,
        algorithm,
        encoding: config.allReduceEncoding,
        ...(config.allReduceFrameBytes > 0 ? { maxPayload: config.allReduceFrameBytes } : {}),
        signal,
        onReport: (r) => metrics.allReduce.record(r),
        frameKey,
        onRefusedFrame: refusedFrame,
        signingKey: observerKeys.privateKey,
        ...(keys ? { participantKeys: keys.map((k, i) => publicKeyFromRaw(k, `participant key ${i}`)) } : {}),
      }),
  });
  metrics.countWorkers((state) => driver.members.count(state));
  const listenHost = f.listen.replace(/:\d+$/, '');
  tuneCoordinatorHeap();
  const server = await startCoordinatorServer({
    listen: f.listen,
    driver,
    runId: run.runId,
    runConfigJson: JSON.stringify(config),
    modelFingerprint: run.modelFingerprint,
    heartbeatIntervalMs: Math.min(5000, Math.floor(f.heartbeat_timeout_ms / 4)),
    heartbeatTimeoutMs: f.heartbeat_timeout_ms,
    microBatchTimeoutMs: f.microbatch_timeout_ms,
    security,
    maxSendBytes: coordinatorSendLimit(run.layout.size),
    maxWorkers: f.max_workers,
    maxCreditsPerWorker: f.max_credits_per_worker,
    limits: limitsForOpenFiles(openFiles),
    onAuthFailure: (reason) => guard.authFailures.inc({ reason }),
    onConnectionRefused: (reason) => guard.connectionsRefused.inc({ reason }),
    frameKey,
    events: ev,
  });
  const http = await serveMetricsOn(metrics.registry, {
    port: f.metrics_port,
    defaultPort: 9400,
    flag: '--metrics_port',
    host: f.metrics_host ?? listenHost.replace(/^\[(.*)\]$/, '$1'),
    pages: statusPages(status, driver),
  });
  ev.info(
    'run_started',
    `run ${run.runId}: listening on ${listenHost}:${server.port} (gRPC), status page and metrics on :${http.port} (/, /metrics), ` +
      `${total} steps, waiting for ${f.min_workers} worker(s)`,
    { grpc_port: server.port, metrics_port: http.port, step: run.startStep, total_steps: total },
  );
  // The last step ends when the driver does, before the adapter is written.
  const ended = driver.done.then(
    () => Date.now(),
    () => undefined,
  );
  try {
    const code = await driveToEnd(driver, run, s, journal, ev);
    const at = await ended;
    if (rehearsal && at !== undefined) await rehearsal.finish(ev, at);
    return code;
  } finally {
    await new Promise((r) => setTimeout(r, 200)); // let Finished reach the workers
    await server.close();
    await http.close();
    await nc.close();
  }
}

export const coordinatorCommand: Command = flagCommand({
  name: 'coordinator',
  summary: 'own a distributed run: data plan, gRPC for workers, checkpoints (no model in this process)',
  usage:
    'lora-mpt coordinator --base_model DIR|HUB_ID [training flags] [--listen H:P] [--nats URL] [--min_workers N]',
  description:
    'Runs the training of `lora-mpt finetune` across `lora-mpt worker` processes; takes every finetune flag. With a synthetic:... base model the run is a rehearsal: it ends by printing the predicted step time, where it goes and the GPU-hours of the planned epochs (also OUTPUT_DIR/rehearsal.json; docs/scale.md#rehearsal).',
  flags: coordinatorFlags,
  async run(f) {
    const code = await runCoordinator(f);
    // Everything is written and closed. A hung worker's half-closed TCP connection (it cannot read
    // our FIN) must not keep a finished coordinator alive: exit if the event loop has not drained.
    setTimeout(() => process.exit(code), 3_000).unref();
    return code;
  },
});

// `lora-mpt worker`: one per GPU. Joins the coordinator's run over gRPC, loads the base model the run
// names on its own disk, computes the micro-batches it is dealt and all-reduces LoRA gradients over
// NATS. Reconnects with backoff when the coordinator restarts; exits 0 when the run is finished.
import { X509Certificate } from 'node:crypto';
import { homedir, hostname } from 'node:os';
import { connect } from '@nats-io/transport-node';
import { hubOptionsFromEnv } from '../hub/hf-cache.ts';
import { resolveModel } from '../hub/models.ts';
import { setBuildInfo } from '../metrics/build-info.ts';
import { createSecurityMetrics } from '../metrics/security-metrics.ts';
import { createWorkerMetrics } from '../metrics/worker-metrics.ts';
import { type BackendChoice, gpuDevice, initBackend } from '../model/backend.ts';
import { backendMemory } from '../model/backend-memory.ts';
import { PROTOCOL_VERSION } from '../protocol/handshake.ts';
import type { ClientSecurity } from '../protocol/transport.ts';
import { loadThreadedCompute, type ThreadedCompute } from '../worker/compute-thread.ts';
import { FAULT_SPEC_HELP, type FaultPlan, parseFaultPlan } from '../worker/fault-injection.ts';
import { RefusedError, runWorkerSession } from '../worker/session.ts';
import { loadSyntheticCompute } from '../worker/synthetic-compute.ts';
import { backendOptions } from './backend-options.ts';
import { type Command, flagCommand } from './command.ts';
import { BACKEND_NAMES, deviceMemoryFlag, numThreadsFlag } from './compute-flags.ts';
import { type FlagSpecs, type ParsedFlags, UsageError } from './flags.ts';
import { eventsFromFlags, logFlags } from './log-flags.ts';
import { serveMetricsOn } from './metrics-port.ts';
import { peakTflopsFlag, resolvePeak } from './peak-flops.ts';
import { refusedFrameReporter } from './refused-frames.ts';
import { clientSecurityOf, natsSecurityOf, warnIfInsecure, workerSecurityFlags } from './security-flags.ts';
import {
  backendModelMismatch,
  NO_TENSORS,
  syntheticBackend,
  syntheticFlags,
  syntheticPeak,
  syntheticProfileOf,
} from './synthetic-flags.ts';
import { packageVersion } from './version.ts';

export const workerFlags = {
  ...logFlags,
  ...workerSecurityFlags,
  coordinator: {
    kind: 'string',
    default: '127.0.0.1:50051',
    help: 'host:port of the coordinator gRPC endpoint.',
  },
  nats: { kind: 'string', default: 'nats://127.0.0.1:4222', help: 'NATS server URL(s), comma-separated.' },
  node_nats_url: {
    kind: 'string',
    help: "This node's NATS leaf server (joined to the --nats cluster; the Helm chart's nats.leaf): the all-reduce connects there first and falls back to --nats while it is down. Node-local traffic of --allreduce_algorithm hierarchical then never leaves the node. Default: --nats only.",
  },
  node_name: {
    kind: 'string',
    help: "The machine this worker runs on, told to the coordinator: workers with the same name are one node of the hierarchical all-reduce (docs/collective.md). Default: the host name (the Helm chart passes the pod's spec.nodeName).",
  },
  backend: {
    kind: 'string',
    default: 'auto',
    help: 'Compute backend: auto (tensorflow when @tensorflow/tfjs-node[-gpu] is installed, else wasm), tensorflow, tensorflow-gpu (the GPU binding on a GPU, proven at start, or exit; as LORA_MPT_REQUIRE_GPU=1), wasm, cpu, or synthetic (no model: for a run whose --base_model is synthetic:..., gradients of the exact size in the time --gpu_profile would take; docs/scale.md).',
  },
  ...syntheticFlags,
  num_threads: numThreadsFlag,
  peak_tflops: peakTflopsFlag,
  device_memory_gb: deviceMemoryFlag,
  worker_id: {
    kind: 'string',
    help: "Unique id of this worker. Default: the id its credential names (a worker token's, or --tls_cert's common name), else host name and process id. A coordinator with TLS names the worker by its credential and refuses another id.",
  },
  max_in_flight: {
    kind: 'int',
    default: 2,
    min: 1,
    help: 'Micro-batches held at once (credit): 2 keeps the next one queued while one computes.',
  },
  metrics_port: {
    kind: 'int',
    min: 0,
    help: 'Port of /metrics and /healthz (0: any free port). Default 9401, or the next free one up to 9464, so several workers share a host.',
  },
  metrics_host: {
    kind: 'string',
    default: '127.0.0.1',
    help: 'Address /metrics and /healthz listen on. Default 127.0.0.1 (this host only); the Helm chart passes 0.0.0.0 so Prometheus can scrape the pod.',
  },
  give_up_after_ms: {
    kind: 'int',
    default: 0,
    min: 0,
    help: 'Exit with an error after this long without a coordinator (0: keep retrying).',
  },
  inject_fault: {
    kind: 'string',
    help: `Fault injection, never for real runs (test/e2e/fault-*.test.ts). ${FAULT_SPEC_HELP}`,
  },
} as const satisfies FlagSpecs;

export async function runWorker(f: ParsedFlags<typeof workerFlags>): Promise<number> {
  if (!(BACKEND_NAMES as readonly string[]).includes(f.backend)) {
    throw new UsageError(`--backend ${f.backend}: expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  let faults: FaultPlan | undefined;
  try {
    faults = f.inject_fault === undefined ? undefined : parseFaultPlan(f.inject_fault);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const security = clientSecurityOf(f, process.env);
  const natsSecurity = natsSecurityOf(f, process.env);
  const id = f.worker_id ?? credentialId(security) ?? `${hostname()}-${process.pid}`;
  const events = eventsFromFlags(f, { label: id, bindings: { worker: id } });
  warnIfInsecure(security, events, 'worker');
  // Started before joining, so the coordinator is told the backend that runs, not the choice.
  const backendOpts = backendOptions(f.num_threads, process.env);
  const synthetic = f.backend === 'synthetic';
  const profile = synthetic ? syntheticProfileOf(f, process.env) : null;
  // The synthetic backend starts no TensorFlow.js backend at all.
  const backend = synthetic
    ? syntheticBackend(profile)
    : await initBackend(f.backend as BackendChoice, backendOpts);
  const device = synthetic ? (profile?.name ?? 'none') : (gpuDevice() ?? 'cpu');
  events.info('backend_selected', backend.summary, { backend: backend.name, device });
  // The model's tensors live on the compute thread: its last report, until it has one.
  let thread: ThreadedCompute | undefined;
  const metrics = createWorkerMetrics(
    id,
    () => thread?.memory() ?? (synthetic ? NO_TENSORS : backendMemory()),
  );
  setBuildInfo(metrics.registry, {
    version: packageVersion(),
    protocol: PROTOCOL_VERSION,
    backend: backend.name,
    device,
  });
  const peak = synthetic ? syntheticPeak(profile, f.peak_tflops) : resolvePeak(f.peak_tflops, process.env);
  if (peak !== null) {
    metrics.peak(peak.flopsPerSecond, peak.source);
    events.info('peak_flops', `MFU is measured against ${peak.text}`, {
      peak_flops: peak.flopsPerSecond,
      source: peak.source,
    });
  }
  const guard = createSecurityMetrics(metrics.registry);
  const http = await serveMetricsOn(metrics.registry, {
    port: f.metrics_port,
    defaultPort: 9401,
    flag: '--metrics_port',
    host: f.metrics_host,
  });
  const nodeName = f.node_name ?? hostname();
  if (nodeName.length === 0 || nodeName.length > 253) {
    throw new UsageError(
      `--node_name ${JSON.stringify(nodeName)}: give 1-253 characters (a host or node name)`,
    );
  }
  // The node's leaf server first, in order: the cluster only while the leaf is down.
  const servers = [...(f.node_nats_url === undefined ? [] : [f.node_nats_url]), ...f.nats.split(',')];
  const nc = await connect({
    servers,
    noRandomize: f.node_nats_url !== undefined,
    name: `lora-mpt-worker-${id}`,
    ...natsSecurity,
    maxReconnectAttempts: -1,
  });
  events.info(
    'worker_started',
    `worker ${id} on node ${nodeName}: coordinator ${f.coordinator}, NATS ${servers.join(',')}, metrics on :${http.port}`,
    {
      metrics_port: http.port,
      pid: process.pid,
      cuda_visible_devices: process.env.CUDA_VISIBLE_DEVICES ?? null,
    },
  );
  if (f.inject_fault !== undefined)
    events.warn('fault_injected', `fault injection (tests only): ${f.inject_fault}`);
  try {
    await runWorkerSession({
      coordinator: f.coordinator,
      security,
      workerId: id,
      nodeName,
      backend: backend.name,
      maxInFlight: f.max_in_flight,
      nc,
      events,
      ...(f.give_up_after_ms > 0 ? { giveUpAfterMs: f.give_up_after_ms } : {}),
      ...(faults ? { faults } : {}),
      observer: metrics,
      onRefusedFrame: refusedFrameReporter(guard, events),
      async prepare(run) {
        const mismatch = backendModelMismatch(f.backend, run.baseModel);
        if (mismatch !== undefined) throw new Error(`run ${run.runId}: ${mismatch}`);
        if (synthetic) {
          const loaded = await loadSyntheticCompute(run.baseModel, run, profile);
          thread = { ...loaded, memory: () => NO_TENSORS, close: () => Promise.resolve() };
          events.info('model_loaded', `${loaded.backendSummary}: ${loaded.layout.size} LoRA values`, {
            backend: loaded.backend,
            lora_values: loaded.layout.size,
          });
          return thread;
        }
        const model = await resolveModel(
          run.baseModel,
          process.env,
          'main',
          hubOptionsFromEnv(process.env, homedir()),
        );
        // On a worker_thread: heartbeats and keepalive flow while a micro-batch computes.
        await thread?.close();
        // The micro-batch shape is not part of the run config: the check counts weights and LoRA
        // state, not activations.
        const budget = { microBatchSize: 0, cutoffLen: 0, memoryGib: f.device_memory_gb };
        const loaded = await loadThreadedCompute(
          model.dir,
          f.backend as BackendChoice,
          run,
          budget,
          backendOpts,
          faults?.blockComputeMs ? { blockFirstTrainMs: faults.blockComputeMs } : {},
        );
        thread = loaded;
        if (loaded.memoryNote !== null) events.warn('warning', loaded.memoryNote);
        events.info(
          'model_loaded',
          `loaded ${model.dir} on ${loaded.backend}: ${loaded.layout.size} LoRA values`,
          {
            backend: loaded.backend,
            lora_values: loaded.layout.size,
          },
        );
        return loaded;
      },
    });
    return 0;
  } catch (err) {
    if (err instanceof RefusedError) {
      events.error('session_refused', err.message);
      return 3;
    }
    throw err;
  } finally {
    await thread?.close();
    await http.close();
    await nc.close();
  }
}

/** The worker id a credential names: a worker token's id, else the client certificate's common name. */
function credentialId(s: ClientSecurity): string | undefined {
  if (s.kind === 'insecure') return undefined;
  const dot = s.token.lastIndexOf('.');
  if (dot > 0) return s.token.slice(0, dot);
  if (!s.cert) return undefined;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(s.cert).subject);
  return cn?.[1];
}

export const workerCommand: Command = flagCommand({
  name: 'worker',
  summary: 'join a distributed run: compute micro-batches, all-reduce LoRA gradients over NATS',
  usage: 'lora-mpt worker --coordinator HOST:PORT --nats URL [flags]',
  description: 'One worker per GPU. The base model path comes from the run (the coordinator --base_model).',
  flags: workerFlags,
  run: runWorker,
});

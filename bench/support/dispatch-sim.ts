// The coordinator's dispatch path alone: the real gRPC server and step driver dealing one large step
// of micro-batches (ROWS x SEQ tokens each, real wire size) to N simulated workers — gRPC clients in
// this process that speak the protocol but report each micro-batch as soon as it arrives, so the
// figures are the coordinator's ceiling, not a model's. Shared by bench/dispatch.ts and
// bench/cluster.ts.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { credentials } from '@grpc/grpc-js';
import { startCoordinatorServer } from '../../src/coordinator/grpc-server.ts';
import { StepDriver } from '../../src/coordinator/step-driver.ts';
import { type MicroBatch, supervisedTokens } from '../../src/data/micro-batch.ts';
import { silentEvents } from '../../src/events/events.ts';
import { CoordinatorClient, type CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { GRPC_CHANNEL_OPTIONS } from '../../src/protocol/channel.ts';
import { PROTOCOL_VERSION } from '../../src/protocol/handshake.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';

const ROWS = 4;
const SEQ = 128;

export interface DispatchFigures {
  readonly workers: number;
  readonly microBatches: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly samples: number;
  /** This process's event-loop delay p99 while dealing (coordinator and simulated workers share it). */
  readonly loopP99Ms: number;
}

function plannedStep(count: number): MicroBatch[] {
  const ids = new Int32Array(ROWS * SEQ).map((_, i) => (i * 7919) % 50277);
  const labels = ids.map((v, i) => (i % SEQ < 40 ? -100 : v));
  const mask = new Int32Array(ROWS * SEQ).fill(1);
  return Array.from({ length: count }, (_, id) => ({
    id,
    step: 0,
    rows: ROWS,
    seqLen: SEQ,
    inputIds: ids,
    labels,
    attentionMask: mask,
  }));
}

export const percentile = (xs: readonly number[], p: number): number =>
  xs.length === 0
    ? Number.NaN
    : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

/**
 * `pacedPerSecond` absent: every client holds 2 micro-batches and reports each at once (the
 * ceiling; latency is then queueing behind the other clients). Present: each holds 1 and "computes"
 * workers / pacedPerSecond seconds before reporting, so the offered load is that rate in all and
 * report-to-next is the coordinator's answer time at that load.
 */
export async function measureDispatch(
  workers: number,
  perWorker: number,
  pacedPerSecond?: number,
): Promise<DispatchFigures> {
  const credits = pacedPerSecond === undefined ? 2 : 1;
  const computeMs = pacedPerSecond === undefined ? 0 : (1000 * workers) / pacedPerSecond;
  const total = workers * perWorker;
  const step = plannedStep(total);
  const tokensPerMicroBatch = supervisedTokens(step[0]!);
  const layout = paramLayout([{ name: 'w', shape: [8, 8] }]);
  let ledgerDone: () => void = () => {};
  const complete = new Promise<void>((r) => {
    ledgerDone = r;
  });
  const driver = new StepDriver({
    runId: 'bench',
    modelFingerprint: 'fp',
    totalSteps: 1,
    minWorkers: workers,
    maxGradNorm: 1,
    evalSteps: 1000,
    replica: new AdapterReplica(layout, new Float32Array(layout.size)),
    microBatches: () => step,
    evalMicroBatches: [],
    learningRate: () => 0,
    observerId: 'coordinator',
    algorithm: 'shard-owner',
    // The step's ledger is whole when the driver starts its all-reduce: that ends the measurement.
    observeReduce: () => {
      ledgerDone();
      return new Promise(() => {});
    },
    onCommit: async () => {},
    onEval: async () => {},
    afterStep: async () => {},
    events: silentEvents,
  });
  const server = await startCoordinatorServer({
    listen: '127.0.0.1:0',
    driver,
    runId: 'bench',
    runConfigJson: '{}',
    modelFingerprint: 'fp',
    heartbeatIntervalMs: 5000,
    security: { kind: 'insecure' },
    heartbeatTimeoutMs: 600_000,
    maxWorkers: workers,
    events: silentEvents,
  });
  const clients: CoordinatorClient[] = [];
  const latencies: number[] = [];
  let received = 0;
  let firstAt = 0;
  const ready: Promise<void>[] = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  for (let w = 0; w < workers; w++) {
    const client = new CoordinatorClient(
      `127.0.0.1:${server.port}`,
      credentials.createInsecure(),
      GRPC_CHANNEL_OPTIONS,
    );
    clients.push(client);
    const call = client.session();
    let reportedAt = 0;
    ready.push(
      new Promise((synced) => {
        call.on('data', (msg: CoordinatorMessage) => {
          const body = msg.body;
          if (body?.$case === 'welcome') {
            call.write({ body: { $case: 'ready', value: { modelFingerprint: 'fp' } } });
          } else if (body?.$case === 'stateSync') {
            call.write({ body: { $case: 'credit', value: { credits } } });
            synced();
          } else if (body?.$case === 'microBatch') {
            const now = performance.now();
            if (firstAt === 0) {
              firstAt = now;
              loop.enable();
            }
            if (reportedAt > 0) latencies.push(now - reportedAt);
            received++;
            const mb = body.value;
            const report = () => {
              reportedAt = performance.now();
              call.write({
                body: {
                  $case: 'result',
                  value: {
                    id: mb.id,
                    step: mb.step,
                    kind: mb.kind,
                    lossSum: 1,
                    supervisedTokens: tokensPerMicroBatch,
                    gradNorm: 1,
                  },
                },
              });
            };
            if (computeMs > 0) setTimeout(report, computeMs);
            else report();
          }
        });
        call.on('error', () => {});
        call.write({
          body: {
            $case: 'hello',
            value: {
              protocolVersion: PROTOCOL_VERSION,
              runId: '',
              workerId: `sim-${String(w).padStart(3, '0')}`,
              capabilities: { backend: 'simulated', deviceMemoryBytes: 0, maxInFlight: credits },
            },
          },
        });
      }),
    );
  }
  await Promise.all(ready);
  // --min_workers N holds the step until every replica is synced; it then runs on credits.
  await complete;
  loop.disable();
  const seconds = (performance.now() - firstAt) / 1000;
  driver.stop('benchmark over');
  await server.close();
  for (const c of clients) c.close();
  return {
    workers,
    microBatches: received,
    seconds,
    perSecond: received / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    samples: latencies.length,
    loopP99Ms: loop.percentile(99) / 1e6,
  };
}

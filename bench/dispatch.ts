// Coordinator dispatch rate: the real gRPC server and step driver dealing one large step of
// micro-batches (4 rows x 128 tokens each, real wire size) to 64 simulated workers — gRPC clients in
// this process that speak the protocol but report each micro-batch as soon as it arrives, so the
// figure is the coordinator's ceiling, not a model's. Prints micro-batches/s and the latency from a
// worker's report (which returns its credit) to its next micro-batch: p50/p99.
import { credentials } from '@grpc/grpc-js';
import { startCoordinatorServer } from '../src/coordinator/grpc-server.ts';
import { StepDriver } from '../src/coordinator/step-driver.ts';
import { type MicroBatch, supervisedTokens } from '../src/data/micro-batch.ts';
import { silentEvents } from '../src/events/events.ts';
import { CoordinatorClient, type CoordinatorMessage } from '../src/proto/lora_mpt/v1/coordinator.ts';
import { GRPC_CHANNEL_OPTIONS } from '../src/protocol/channel.ts';
import { PROTOCOL_VERSION } from '../src/protocol/handshake.ts';
import { paramLayout } from '../src/train/param-layout.ts';
import { AdapterReplica } from '../src/train/replica.ts';

const WORKERS = 64;
const PER_WORKER = 60;
const ROWS = 4;
const SEQ = 128;

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

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

export async function run(): Promise<void> {
  const total = WORKERS * PER_WORKER;
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
    minWorkers: WORKERS,
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
    events: silentEvents,
  });
  const clients: CoordinatorClient[] = [];
  const latencies: number[] = [];
  let received = 0;
  let firstAt = 0;
  const ready: Promise<void>[] = [];
  for (let w = 0; w < WORKERS; w++) {
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
            call.write({ body: { $case: 'credit', value: { credits: 2 } } });
            synced();
          } else if (body?.$case === 'microBatch') {
            const now = performance.now();
            if (firstAt === 0) firstAt = now;
            if (reportedAt > 0) latencies.push(now - reportedAt);
            received++;
            reportedAt = performance.now();
            const mb = body.value;
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
          }
        });
        call.on('error', () => {});
        call.write({
          body: {
            $case: 'hello',
            value: {
              protocolVersion: PROTOCOL_VERSION,
              runId: '',
              workerId: `sim-${String(w).padStart(2, '0')}`,
              capabilities: { backend: 'simulated', deviceMemoryBytes: 0, maxInFlight: 2, nodeName: '' },
            },
          },
        });
      }),
    );
  }
  await Promise.all(ready);
  // --min_workers 64 holds the step until every replica is synced; it then runs on credits.
  await complete;
  const seconds = (performance.now() - firstAt) / 1000;
  driver.stop('benchmark over');
  await server.close();
  for (const c of clients) c.close();
  console.log(
    `\n## Coordinator dispatch: ${WORKERS} simulated workers, one step of ${total} micro-batches (${ROWS}x${SEQ} tokens each)`,
  );
  console.log(
    `micro-batches dispatched and reported: ${received} in ${seconds.toFixed(2)} s = ${(received / seconds).toFixed(0)} micro-batches/s`,
  );
  console.log(
    `report -> next micro-batch latency: p50 ${pct(latencies, 0.5).toFixed(2)} ms, p99 ${pct(latencies, 0.99).toFixed(2)} ms (${latencies.length} samples)`,
  );
}

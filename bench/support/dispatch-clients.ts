// Simulated workers for the dispatch bench, in their own process so the coordinator's process keeps
// its core: `node --import tsx dispatch-clients.ts PORT WORKERS CREDITS COMPUTE_MS FIRST_INDEX`.
// Each opens its own gRPC connection and Session stream, joins, and reports each micro-batch
// COMPUTE_MS after it arrives (0: at once). Prints one JSON line: report-to-next latencies (ms), and
// this process's CPU and wall time from the first micro-batch received to the last run's end.
import { credentials } from '@grpc/grpc-js';
import { supervisedTokens } from '../../src/data/micro-batch.ts';
import { CoordinatorClient, type CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { GRPC_CHANNEL_OPTIONS } from '../../src/protocol/channel.ts';
import { PROTOCOL_VERSION } from '../../src/protocol/handshake.ts';
import { fromWire } from '../../src/protocol/messages.ts';

const [port, workers, credits, computeMs, first] = process.argv.slice(2).map(Number) as [
  number,
  number,
  number,
  number,
  number,
];
const latencies: number[] = [];
const clients: CoordinatorClient[] = [];
let finished = 0;
/** CPU and wall clock when the first micro-batch arrived (dealing had begun). */
let began: { cpu: NodeJS.CpuUsage; at: number } | undefined;
for (let w = 0; w < workers; w++) {
  // Its own connection, as a worker process has (grpc-js would share one between equal channels).
  const client = new CoordinatorClient(`127.0.0.1:${port}`, credentials.createInsecure(), {
    ...GRPC_CHANNEL_OPTIONS,
    'grpc.use_local_subchannel_pool': 1,
  });
  clients.push(client);
  const call = client.session();
  let reportedAt = 0;
  call.on('data', (msg: CoordinatorMessage) => {
    const body = msg.body;
    if (body?.$case === 'welcome') {
      call.write({ body: { $case: 'ready', value: { modelFingerprint: 'fp' } } });
    } else if (body?.$case === 'stateSync') {
      call.write({ body: { $case: 'credit', value: { credits } } });
    } else if (body?.$case === 'microBatch') {
      began ??= { cpu: process.cpuUsage(), at: performance.now() };
      if (reportedAt > 0) latencies.push(performance.now() - reportedAt);
      const mb = body.value;
      // Decoded as a worker decodes it (replica-worker.ts), so the count is what a worker reports.
      const tokens = supervisedTokens(fromWire(mb));
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
              supervisedTokens: tokens,
              gradNorm: 1,
            },
          },
        });
      };
      if (computeMs > 0) setTimeout(report, computeMs);
      else report();
    } else if (body?.$case === 'finished') {
      call.end();
      if (++finished === workers) {
        const cpu = process.cpuUsage(began?.cpu);
        const wallMicros = 1000 * (performance.now() - (began?.at ?? 0));
        for (const c of clients) c.close();
        // Exit once the line is written: a pipe takes large writes asynchronously, and exiting at
        // once cut the latencies of long runs short.
        process.stdout.write(
          `${JSON.stringify({ latencies, cpuMicros: cpu.user + cpu.system, wallMicros })}\n`,
          () => process.exit(0),
        );
      }
    }
  });
  call.on('error', () => {});
  call.write({
    body: {
      $case: 'hello',
      value: {
        protocolVersion: PROTOCOL_VERSION,
        runId: '',
        workerId: `sim-${String(first + w).padStart(3, '0')}`,
        capabilities: { backend: 'simulated', deviceMemoryBytes: 0, maxInFlight: credits, nodeName: '' },
      },
    },
  });
}

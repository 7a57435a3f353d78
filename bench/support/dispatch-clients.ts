// Simulated workers for the dispatch bench, in their own process so the coordinator's process keeps
// its core: `node --import tsx dispatch-clients.ts PORT WORKERS CREDITS COMPUTE_MS FIRST_INDEX
// ARRIVALS WARMUP`. Each opens its own gRPC connection and Session stream, joins, and reports each
// micro-batch COMPUTE_MS after it arrives (0: at once): exactly that long (ARRIVALS `fixed`), or
// drawn from an exponential distribution of that mean (`poisson`). Prints one JSON line: the
// report-to-next latencies (ms) after each session's first WARMUP micro-batches and, apart, those
// of its first WARMUP; this process's CPU and wall time from the first micro-batch received to the
// last run's end; its event-loop delay and garbage-collection pauses over that time.
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { credentials } from '@grpc/grpc-js';
import { tuneCoordinatorHeap } from '../../src/coordinator/heap-tuning.ts';
import { IGNORE_INDEX } from '../../src/data/tokenize-example.ts';
import { CoordinatorClient, type CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { GRPC_CHANNEL_OPTIONS } from '../../src/protocol/channel.ts';
import { PROTOCOL_VERSION } from '../../src/protocol/handshake.ts';
import type { WireMicroBatch } from '../../src/protocol/wire.ts';

const [port, workers, credits, computeMs, first] = process.argv.slice(2, 7).map(Number) as [
  number,
  number,
  number,
  number,
  number,
];
// This process plays 256 workers, so its own garbage collections delay every latency it measures
// (a real worker, one per host, answers one micro-batch per compute time). It gets the collector
// settings the coordinator gives itself (src/coordinator/heap-tuning.ts): each 6 KB micro-batch
// the gRPC client reassembles then shares a pooled ArrayBuffer instead of having its own, and no
// literal's objects go straight to the old generation to keep young ones alive.
tuneCoordinatorHeap();
const arrivals = process.argv[7] ?? 'fixed';
const warmup = Number(process.argv[8] ?? 0);
if (arrivals !== 'fixed' && arrivals !== 'poisson') throw new Error(`arrivals ${arrivals}: fixed or poisson`);
/** How long this micro-batch "computes": the mean, or an exponential draw of that mean. */
const computeTime = (): number =>
  arrivals === 'fixed' ? computeMs : -computeMs * Math.log(1 - Math.random());
/**
 * What a worker reports as its supervised tokens (`supervisedTokens(fromWire(mb))`, replica-worker.ts),
 * read from the labels' bytes in place. fromWire copies a field whose bytes are not 4-byte aligned
 * in the received message (they rarely are): three 2 KB ArrayBuffers per micro-batch, which 256
 * simulated workers in one process made their young collections sweep by the thousand, pausing all
 * 256 at once. The coordinator checks the count (result-check.ts): a wrong one would be refused.
 */
function supervisedCount(mb: WireMicroBatch): number {
  const labels = new DataView(mb.labels.buffer, mb.labels.byteOffset, mb.labels.byteLength);
  let n = 0;
  for (let r = 0; r < mb.rows; r++)
    for (let t = 1; t < mb.seqLen; t++)
      if (labels.getInt32(4 * (r * mb.seqLen + t), true) !== IGNORE_INDEX) n++;
  return n;
}

const latencies: number[] = [];
const warmupLatencies: number[] = [];
const clients: CoordinatorClient[] = [];
let finished = 0;
/** CPU and wall clock when the first micro-batch arrived (dealing had begun). */
let began: { cpu: NodeJS.CpuUsage; at: number } | undefined;
// This process's own delays, which the latencies measured here include: its event loop's lag and
// its garbage-collection pauses, both from the first micro-batch on.
const loop = monitorEventLoopDelay({ resolution: 1 });
const gcPauses: number[] = [];
new PerformanceObserver((list) => {
  if (began) for (const e of list.getEntries()) gcPauses.push(e.duration);
}).observe({ entryTypes: ['gc'] });
for (let w = 0; w < workers; w++) {
  // Its own connection, as a worker process has (grpc-js would share one between equal channels).
  const client = new CoordinatorClient(`127.0.0.1:${port}`, credentials.createInsecure(), {
    ...GRPC_CHANNEL_OPTIONS,
    'grpc.use_local_subchannel_pool': 1,
  });
  clients.push(client);
  const call = client.session();
  let reportedAt = 0;
  let received = 0;
  call.on('data', (msg: CoordinatorMessage) => {
    const body = msg.body;
    if (body?.$case === 'welcome') {
      call.write({ body: { $case: 'ready', value: { modelFingerprint: 'fp' } } });
    } else if (body?.$case === 'stateSync') {
      call.write({ body: { $case: 'credit', value: { credits } } });
    } else if (body?.$case === 'microBatch') {
      if (!began) {
        began = { cpu: process.cpuUsage(), at: performance.now() };
        loop.enable();
      }
      // The first micro-batches of a fresh process run before V8 has optimized its code.
      if (reportedAt > 0)
        (++received > warmup ? latencies : warmupLatencies).push(performance.now() - reportedAt);
      // The count a worker reports (supervisedCount above).
      // While it "computes" it keeps only what its report needs: 256 simulated workers share this
      // process's heap, and holding each decoded micro-batch (~15 KB of JS arrays; a real worker
      // holds its tokens in tensors, in its own process) made every young-generation collection
      // here copy megabytes, pausing all 256 at once.
      const { id, step, kind } = body.value;
      const tokens = supervisedCount(body.value);
      const report = () => {
        reportedAt = performance.now();
        call.write({
          body: {
            $case: 'result',
            value: {
              id,
              step,
              kind,
              lossSum: 1,
              supervisedTokens: tokens,
              gradNorm: 1,
            },
          },
        });
      };
      if (computeMs > 0) setTimeout(report, computeTime());
      else report();
    } else if (body?.$case === 'finished') {
      call.end();
      if (++finished === workers) {
        const cpu = process.cpuUsage(began?.cpu);
        const wallMicros = 1000 * (performance.now() - (began?.at ?? 0));
        loop.disable();
        for (const c of clients) c.close();
        // Exit once the line is written: a pipe takes large writes asynchronously, and exiting at
        // once cut the latencies of long runs short.
        process.stdout.write(
          `${JSON.stringify({
            latencies,
            warmupLatencies,
            cpuMicros: cpu.user + cpu.system,
            wallMicros,
            loopP99Ms: loop.percentile(99) / 1e6,
            loopMaxMs: loop.max / 1e6,
            gcPauses,
          })}\n`,
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

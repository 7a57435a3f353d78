// Coordinator dispatch rate: the real gRPC server and step driver dealing one large step of
// micro-batches (4 rows x 128 tokens each, real wire size) to 64 simulated workers — gRPC clients in
// a child process that speak the protocol but report each micro-batch as soon as it arrives, so the
// figure is the coordinator's ceiling, not a model's (bench/support/dispatch-sim.ts). Prints
// micro-batches/s, the latency from a worker's report (which returns its credit) to its next
// micro-batch (p50/p99), and the coordinator's CPU per micro-batch. bench/cluster.ts runs the same
// at 8 to 256 workers.
import { loadavg } from 'node:os';
import { measureDispatch } from './support/dispatch-sim.ts';

const WORKERS = 64;
const PER_WORKER = 60;

export async function run(): Promise<void> {
  const f = await measureDispatch(WORKERS, PER_WORKER);
  console.log(
    `\n## Coordinator dispatch: ${WORKERS} simulated workers (another process), one step of ${f.microBatches} micro-batches (4x128 tokens each)`,
  );
  console.log(
    `micro-batches dispatched and reported: ${f.microBatches} in ${f.seconds.toFixed(2)} s = ${f.perSecond.toFixed(0)} micro-batches/s`,
  );
  console.log(
    `report -> next micro-batch latency: p50 ${f.p50Ms.toFixed(2)} ms, p99 ${f.p99Ms.toFixed(2)} ms (${f.samples} samples)`,
  );
  console.log(
    `coordinator CPU per micro-batch: ${f.cpuMicrosPerMicroBatch.toFixed(0)} us (= ${(1e6 / f.cpuMicrosPerMicroBatch).toFixed(0)} micro-batches/s per core); event-loop p99 ${f.loopP99Ms.toFixed(1)} ms; loadavg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}

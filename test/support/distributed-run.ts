// Runs a whole distributed training for tests: a real nats-server, one `lora-mpt coordinator` and N
// `lora-mpt worker` processes on loopback, and returns when the coordinator exits. Fault tests use
// the returned handles to kill or restart parts mid-run.
import { type LoraProcess, startLoraMpt } from './processes.ts';

export interface DistributedRun {
  readonly coordinator: LoraProcess;
  readonly workers: LoraProcess[];
  readonly grpcPort: number;
  startWorker(id: string, extra?: readonly string[]): LoraProcess;
  stop(): Promise<void>;
}

export async function startDistributedRun(o: {
  natsUrl: string;
  trainingFlags: readonly string[];
  workers: readonly string[];
  minWorkers?: number;
  coordinatorFlags?: readonly string[];
  workerFlags?: readonly string[];
  /** TLS and tokens (test/support/certs.ts); default --insecure on both sides. */
  secure?: {
    readonly coordinator: readonly string[];
    worker(id: string): readonly string[];
  };
}): Promise<DistributedRun> {
  const coordinator = startLoraMpt('coordinator', [
    'coordinator',
    ...o.trainingFlags,
    '--listen',
    '127.0.0.1:0',
    '--nats',
    o.natsUrl,
    '--metrics_port',
    '0',
    '--min_workers',
    String(o.minWorkers ?? o.workers.length),
    ...(o.secure ? o.secure.coordinator : ['--insecure']),
    ...(o.coordinatorFlags ?? []),
  ]);
  const started = await coordinator.waitForEvent('run_started', undefined, { ms: 120_000 });
  const grpcPort = Number(started.grpc_port);
  const startWorker = (id: string, extra: readonly string[] = []) =>
    startLoraMpt(id, [
      'worker',
      '--coordinator',
      `127.0.0.1:${grpcPort}`,
      '--nats',
      o.natsUrl,
      '--worker_id',
      id,
      '--metrics_port',
      '0',
      ...(o.secure ? o.secure.worker(id) : ['--insecure']),
      ...(o.workerFlags ?? []),
      ...extra,
    ]);
  const workers = o.workers.map((id) => startWorker(id));
  return {
    coordinator,
    workers,
    grpcPort,
    startWorker: (id, extra) => {
      const w = startWorker(id, extra);
      workers.push(w);
      return w;
    },
    stop: async () => {
      await Promise.all([coordinator, ...workers].map((p) => p.kill()));
    },
  };
}

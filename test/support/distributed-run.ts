// Runs a whole distributed training for tests: one `lora-mpt coordinator` and N `lora-mpt worker`s
// beside a real NATS server, on loopback, as processes or (with a starter from containers.ts) as
// containers on the host network. Fault tests use the returned handles to kill or restart parts
// mid-run.
import type { LoraCommand } from './lora-output.ts';
import { type LoraProcess, startLoraMpt } from './processes.ts';

/** Starts `lora-mpt <args>` named `name`: startLoraMpt, or a container starter. */
export type LoraStarter<C extends LoraCommand> = (name: string, args: readonly string[]) => C;

export interface DistributedRun<C extends LoraCommand = LoraProcess> {
  readonly coordinator: C;
  readonly workers: C[];
  readonly grpcPort: number;
  startWorker(id: string, extra?: readonly string[]): C;
  stop(): Promise<void>;
}

export interface DistributedRunOptions {
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
}

export function startDistributedRun(o: DistributedRunOptions): Promise<DistributedRun<LoraProcess>>;
export function startDistributedRun<C extends LoraCommand>(
  o: DistributedRunOptions,
  start: LoraStarter<C>,
): Promise<DistributedRun<C>>;
export async function startDistributedRun(
  o: DistributedRunOptions,
  start: LoraStarter<LoraCommand> = startLoraMpt,
): Promise<DistributedRun<LoraCommand>> {
  const coordinator = start('coordinator', [
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
    start(id, [
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

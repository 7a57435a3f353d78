// `lora-mpt launch`: one multi-GPU machine without Kubernetes, as torchrun does it. Starts a local
// nats-server (unless --nats names one), the coordinator, and --nproc_per_node workers, worker i on
// GPU i (CUDA_VISIBLE_DEVICES), prints everyone's events as readable lines (or passes the JSON on),
// restarts a worker that fails (up to --max_restarts), and ends with the coordinator's exit code.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TextSink } from '../events/text-sink.ts';
import { writeRunCredentials } from './certs.ts';
import { type Command, flagCommand } from './command.ts';
import { numThreadsFlag } from './compute-flags.ts';
import { type FlagSpecs, flagArgs, type ParsedFlags, UsageError } from './flags.ts';
import { startLocalNats, stopProcess } from './local-nats.ts';
import { checkLogFlags, logFlags } from './log-flags.ts';
import { peakTflopsFlag } from './peak-flops.ts';
import { natsSecurityFlags } from './security-flags.ts';
import { syntheticFlags } from './synthetic-flags.ts';
import { trainingFlags } from './training-flags.ts';

const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
/** The NATS user of a run launch starts its own nats-server for. */
const LOCAL_NATS_USER = 'lora-mpt';

export const launchFlags = {
  ...trainingFlags,
  nproc_per_node: {
    kind: 'int',
    default: 1,
    min: 1,
    help: 'Worker processes on this machine, one per GPU: worker i sees GPU i (the i-th entry of CUDA_VISIBLE_DEVICES when it is set).',
  },
  nats: {
    kind: 'string',
    help: "NATS server URL(s) to use, with --nats_user, --nats_password_file and --nats_ca. Default: a nats-server started on a free loopback port for this run, with TLS and the run's own user.",
  },
  ...natsSecurityFlags,
  node_name: {
    kind: 'string',
    help: "The node name every worker of this launch tells the coordinator (worker --node_name). Default: this host's name. One machine is one node, and launch uses one NATS server, so --allreduce_algorithm hierarchical reduces inside it.",
  },
  num_threads: {
    ...numThreadsFlag,
    help: 'TensorFlow intra-op threads of each worker. 0: the CPU cores divided among the workers (at least 1).',
  },
  ...syntheticFlags,
  peak_tflops: peakTflopsFlag,
  max_restarts: {
    kind: 'int',
    default: 3,
    min: 0,
    help: 'Times a worker that exits with an error is started again (it rejoins and is re-synced) before the run is stopped.',
  },
  log_format: logFlags.log_format,
  log_level: {
    ...logFlags.log_level,
    help: `${logFlags.log_level.help} Passed on to the coordinator and workers.`,
  },
} as const satisfies FlagSpecs;

interface Child {
  readonly process: ChildProcess;
  readonly done: Promise<number | null>;
}

/** Which GPU worker `i` of `n` gets: the i-th of CUDA_VISIBLE_DEVICES when set, else i. */
export function deviceOf(i: number, n: number, visible: string | undefined): string {
  if (visible === undefined || visible.trim() === '') return String(i);
  const ids = visible
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (n > ids.length) {
    throw new UsageError(
      `--nproc_per_node ${n}: CUDA_VISIBLE_DEVICES=${visible} lists ${ids.length} GPU(s); start at most ${ids.length} workers`,
    );
  }
  return ids[i]!;
}

/** GPUs on this machine by `nvidia-smi -L` (one "GPU i: ..." line each), or null when it cannot run. */
export function detectGpus(): number | null {
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 20_000 });
  if (r.error !== undefined || r.status !== 0) return null;
  return r.stdout.split('\n').filter((l) => /^GPU \d+:/.test(l)).length;
}

/**
 * Each worker's CUDA_VISIBLE_DEVICES: the i-th listed device, else GPU i of the `detected` ones; null
 * (no GPU: the worker computes on the CPU) where none is known, unless a GPU is required. Never an
 * index that does not exist: a worker handed one would silently compute on the CPU.
 */
export function gpuDevices(
  n: number,
  visible: string | undefined,
  detected: number | null,
  requireGpu: boolean,
): readonly (string | null)[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (visible !== undefined && visible.trim() !== '') return all.map((i) => deviceOf(i, n, visible));
  if (detected !== null && detected > 0) {
    if (n > detected) {
      throw new UsageError(
        `--nproc_per_node ${n}: this machine has ${detected} GPU(s) (nvidia-smi -L); start at most ${detected} workers`,
      );
    }
    return all.map((i) => deviceOf(i, n, undefined));
  }
  if (requireGpu) {
    throw new UsageError(
      `a GPU is required (--backend tensorflow-gpu or LORA_MPT_REQUIRE_GPU=1) but none is visible: CUDA_VISIBLE_DEVICES is unset and nvidia-smi -L ${detected === null ? 'did not run' : 'lists no GPU'}`,
    );
  }
  return all.map(() => null);
}

export async function runLaunch(f: ParsedFlags<typeof launchFlags>): Promise<number> {
  checkLogFlags(f);
  const json = f.log_format === 'json' || (f.log_format === 'auto' && !process.stdout.isTTY);
  const n = f.nproc_per_node;
  const requireGpu = f.backend === 'tensorflow-gpu' || process.env.LORA_MPT_REQUIRE_GPU === '1';
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  // Synthetic workers model a GPU and use none: nothing to count or hand out.
  const synthetic = f.backend === 'synthetic';
  const devices = synthetic
    ? Array.from({ length: n }, () => null)
    : gpuDevices(n, visible, visible ? null : detectGpus(), requireGpu);
  // The modelled GPU goes to every synthetic worker (the coordinator never computes).
  const workerComputeArgs = synthetic
    ? [
        '--gpu_profile',
        f.gpu_profile,
        '--gpu_mfu',
        String(f.gpu_mfu),
        ...(f.peak_tflops !== undefined ? ['--peak_tflops', String(f.peak_tflops)] : []),
      ]
    : f.peak_tflops !== undefined
      ? ['--peak_tflops', String(f.peak_tflops)]
      : [];
  const threads = f.num_threads > 0 ? f.num_threads : Math.max(1, Math.floor(availableParallelism() / n));
  const quiet = f.log_level === 'warn' || f.log_level === 'error';
  const say = (text: string) =>
    quiet
      ? undefined
      : json
        ? console.log(JSON.stringify({ level: 'info', event: 'launch', msg: text }))
        : console.log(`[launch] ${text}`);

  const start = (
    label: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = {},
    onEvent?: (e: Record<string, unknown>) => void,
  ): Child => {
    const p = spawn(process.execPath, [BIN, ...args, '--log_format', 'json', '--log_level', f.log_level], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const sink = json
      ? undefined
      : new TextSink(process.stdout, { label, stepEvery: f.logging_steps, live: false });
    createInterface({ input: p.stdout! }).on('line', (line) => {
      if (sink) sink.write(`${line}\n`);
      else console.log(line);
      try {
        onEvent?.(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line that is not an event: shown, nothing to react to
      }
    });
    createInterface({ input: p.stderr! }).on('line', (line) => console.error(`[${label}] ${line}`));
    return { process: p, done: new Promise((r) => p.once('exit', (code) => r(code))) };
  };

  // Mutual TLS and tokens on loopback too: a run's credentials made for this launch, removed after it.
  const credsDir = mkdtempSync(join(tmpdir(), 'lora-mpt-launch-'));
  const creds = writeRunCredentials(credsDir, {
    hosts: ['127.0.0.1', 'localhost'],
    workers: devices.map((_, i) => `worker-${i}`),
    days: 7,
    natsHosts: ['127.0.0.1', 'localhost'],
  });
  // The local NATS serves TLS and one user allowed only the run's subjects (docs/security.md).
  const nats =
    f.nats === undefined
      ? await startLocalNats({
          port: -1,
          tls: { certFile: join(credsDir, 'nats.crt'), keyFile: join(credsDir, 'nats.key') },
          users: [
            {
              user: LOCAL_NATS_USER,
              password: readFileSync(creds.natsPassword, 'utf8').trim(),
              subjects: ['lora.>'],
            },
          ],
        })
      : undefined;
  const natsUrl = f.nats ?? nats!.url;
  const natsArgs = nats
    ? [
        '--nats_user',
        LOCAL_NATS_USER,
        '--nats_password_file',
        creds.natsPassword,
        '--nats_ca',
        join(credsDir, 'nats-ca.crt'),
      ]
    : flagArgs(natsSecurityFlags, f);
  say(
    `${nats ? `nats-server on ${natsUrl}` : `NATS at ${natsUrl}`}; a coordinator and ${n} worker(s) ${devices[0] === null ? 'on the CPU (no GPU visible)' : `on GPU(s) ${devices.join(', ')}`}, ${threads} thread(s) each`,
  );
  let port: (p: number) => void = () => {};
  const listening = new Promise<number>((r) => {
    port = r;
  });
  const coordinator = start(
    'coordinator',
    [
      'coordinator',
      ...flagArgs(trainingFlags, f),
      '--listen',
      '127.0.0.1:0',
      '--nats',
      natsUrl,
      '--metrics_port',
      '0',
      '--min_workers',
      String(n),
      '--tls_cert',
      creds.coordinatorCert,
      '--tls_key',
      creds.coordinatorKey,
      '--tls_client_ca',
      creds.ca,
      '--run_token_file',
      creds.runToken,
      ...natsArgs,
    ],
    {},
    (e) => {
      if (e.event === 'run_started') port(Number(e.grpc_port));
    },
  );
  let stopping = false;
  const stop = () => {
    stopping = true;
    coordinator.process.kill('SIGTERM');
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const workers: Child[] = [];
  try {
    const grpcPort = await Promise.race([
      listening,
      coordinator.done.then((code) => code), // finished at once (already done) or failed
    ]);
    if (grpcPort === null || coordinator.process.exitCode !== null) return (await coordinator.done) ?? 1;
    const worker = async (i: number): Promise<void> => {
      for (let restarts = 0; ; restarts++) {
        const w = start(
          `worker-${i}`,
          [
            'worker',
            '--coordinator',
            `127.0.0.1:${grpcPort}`,
            '--nats',
            natsUrl,
            '--worker_id',
            `worker-${i}`,
            '--tls_ca',
            creds.ca,
            '--tls_cert',
            creds.workers.get(`worker-${i}`)!.cert,
            '--tls_key',
            creds.workers.get(`worker-${i}`)!.key,
            '--token_file',
            creds.workers.get(`worker-${i}`)!.token,
            ...natsArgs,
            '--metrics_port',
            '0',
            '--backend',
            f.backend,
            '--num_threads',
            String(threads),
            '--give_up_after_ms',
            '60000',
            ...(f.node_name === undefined ? [] : ['--node_name', f.node_name]),
            ...workerComputeArgs,
          ],
          devices[i] === null ? {} : { CUDA_VISIBLE_DEVICES: devices[i] as string },
        );
        workers[i] = w;
        const code = await w.done;
        if (code === 0 || stopping || coordinator.process.exitCode !== null) return;
        if (restarts >= f.max_restarts) {
          say(
            `worker-${i} failed ${restarts + 1} time(s) (exit ${code}): stopping the run (--max_restarts ${f.max_restarts})`,
          );
          stop();
          return;
        }
        say(
          `worker-${i} exited with ${code}: starting it again (${restarts + 1} of --max_restarts ${f.max_restarts})`,
        );
      }
    };
    const running = devices.map((_, i) => worker(i));
    const code = (await coordinator.done) ?? 1;
    await Promise.all(running);
    return code;
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    await Promise.all(workers.map((w) => stopProcess(w.process, 'SIGTERM')));
    await stopProcess(coordinator.process, 'SIGTERM');
    await nats?.stop();
    rmSync(credsDir, { recursive: true, force: true });
  }
}

export const launchCommand: Command = flagCommand({
  name: 'launch',
  summary:
    'run a distributed fine-tune on this machine: local NATS, the coordinator, one worker per GPU (like torchrun)',
  usage: 'lora-mpt launch --nproc_per_node N --base_model DIR|HUB_ID [training flags]',
  description:
    "Starts a local nats-server (or uses --nats), `lora-mpt coordinator` with the training flags, and N `lora-mpt worker` processes, worker i on GPU i. Stops them all on SIGTERM/SIGINT; exits with the coordinator's code. With --backend synthetic the run is a rehearsal: the coordinator ends by printing the predicted step time, where it goes and the GPU-hours of the planned epochs (also OUTPUT_DIR/rehearsal.json; docs/scale.md#rehearsal).",
  flags: launchFlags,
  run: runLaunch,
});

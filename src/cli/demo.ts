// `lora-mpt demo`: the README's first command. Makes a small randomly initialised MPT (said plainly:
// it has learned nothing, so its text is noise; the point is the machinery), then fine-tunes a LoRA
// adapter on the real Alpaca data with a local nats-server, a coordinator and N worker processes —
// the distributed run of a cluster, on this machine — and prints where the adapter is.
import { spawn } from 'node:child_process';
import { copyFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { writeRandomMpt } from '../checkpoint/random-init.ts';
import { TextSink } from '../events/text-sink.ts';
import { numThreadsFlag } from './backend-options.ts';
import { type Command, flagCommand } from './command.ts';
import { type FlagSpecs, type ParsedFlags, UsageError } from './flags.ts';
import { startLocalNats, stopProcess } from './local-nats.ts';

const SHARED = fileURLToPath(new URL('../../../shared/data/', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));

export const demoFlags = {
  output_dir: {
    kind: 'string',
    default: './lora-mpt-demo',
    help: 'Where the base model, checkpoints and adapter go.',
  },
  workers: {
    kind: 'int',
    default: 2,
    min: 0,
    help: 'Worker processes (each one compute backend). 0 runs `lora-mpt finetune` in one process instead.',
  },
  max_steps: { kind: 'int', default: 40, min: 1, help: 'Optimizer steps of 16 examples.' },
  data_path: {
    kind: 'string',
    default: join(SHARED, 'alpaca_data.json'),
    help: 'Alpaca-format data (default: the Stanford Alpaca file in the shared data folder).',
  },
  tokenizer: {
    kind: 'string',
    default: join(SHARED, 'gpt-neox-20b', 'tokenizer.json'),
    help: 'GPT-NeoX tokenizer.json, copied beside the demo model.',
  },
  backend: {
    kind: 'string',
    default: 'auto',
    help: 'Compute backend of the workers: auto, tensorflow, wasm or cpu.',
  },
  num_threads: {
    ...numThreadsFlag,
    help: 'TensorFlow intra-op threads of each worker (or of finetune with --workers 0); 0: TensorFlow default.',
  },
} as const satisfies FlagSpecs;

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/**
 * Runs `lora-mpt ARGS` as a child that emits JSON events, printed here as readable lines under
 * `label`; `onEvent` sees each event. Resolves with its exit code.
 */
function child(
  label: string,
  args: readonly string[],
  onEvent?: (e: { readonly event?: string; readonly [k: string]: unknown }) => void,
): { done: Promise<number | null>; kill(): Promise<void> } {
  const p = spawn(process.execPath, [BIN, ...args, '--log_format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const sink = new TextSink(process.stdout, { label, stepEvery: 5, live: false });
  createInterface({ input: p.stdout }).on('line', (line) => {
    sink.write(`${line}\n`);
    try {
      onEvent?.(JSON.parse(line) as { event?: string });
    } catch {
      // not an event (a stray print): shown as it is, nothing to react to
    }
  });
  createInterface({ input: p.stderr }).on('line', (line) => console.log(`[${label}] ${line}`));
  const done = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  return { done, kill: () => stopProcess(p, 'SIGTERM') };
}

export async function runDemo(f: ParsedFlags<typeof demoFlags>): Promise<number> {
  for (const [flag, path] of [
    ['--data_path', f.data_path],
    ['--tokenizer', f.tokenizer],
  ] as const) {
    if (!(await exists(path))) {
      throw new UsageError(
        `${flag} ${path} does not exist; the demo reads the shared data folder beside this repository (or pass ${flag})`,
      );
    }
  }
  const out = resolve(f.output_dir);
  const model = join(out, 'base-model');
  if (!(await exists(join(model, 'model.safetensors')))) {
    console.log(
      `demo: writing a small MPT with RANDOM weights to ${model} (d_model 128, 4 heads, 2 layers, GPT-NeoX vocabulary)`,
    );
    await writeRandomMpt(model, {
      dModel: 128,
      nHeads: 4,
      nLayers: 2,
      vocabSize: 50432,
      maxSeqLen: 512,
      seed: 1,
    });
    await copyFile(f.tokenizer, join(model, 'tokenizer.json'));
  }
  const adapterDir = join(out, 'adapter');
  // Each demo is a new run: an adapter dir of an earlier demo would resume (or be already finished).
  await rm(adapterDir, { recursive: true, force: true });
  const training = [
    '--base_model',
    model,
    '--data_path',
    f.data_path,
    '--output_dir',
    adapterDir,
    '--batch_size',
    '16',
    '--micro_batch_size',
    '4',
    '--max_steps',
    String(f.max_steps),
    '--cutoff_len',
    '128',
    '--val_set_size',
    '32',
    '--learning_rate',
    '1e-2',
    '--warmup_steps',
    '4',
    '--eval_steps',
    String(Math.max(1, Math.floor(f.max_steps / 2))),
    '--save_steps',
    String(Math.max(1, Math.floor(f.max_steps / 2))),
    '--logging_steps',
    '5',
    '--lora_r',
    '16',
    '--lora_target_modules',
    '[Wqkv,out_proj,up_proj,down_proj]',
  ];
  const compute = [
    '--backend',
    f.backend,
    ...(f.num_threads > 0 ? ['--num_threads', String(f.num_threads)] : []),
  ];
  if (f.workers === 0) {
    const ft = child('finetune', ['finetune', ...training, ...compute]);
    return (await ft.done) ?? 1;
  }
  const nats = await startLocalNats({ port: -1 });
  console.log(`demo: nats-server on ${nats.url}; a coordinator and ${f.workers} worker process(es)`);
  let portFound: (port: number) => void = () => {};
  const portSeen = new Promise<number>((r) => {
    portFound = r;
  });
  const coordinator = child(
    'coordinator',
    [
      'coordinator',
      ...training,
      '--listen',
      '127.0.0.1:0',
      '--nats',
      nats.url,
      '--metrics_port',
      '0',
      '--min_workers',
      String(f.workers),
      '--insecure', // a demo on one machine's loopback: plaintext, said loudly by both processes
    ],
    (e) => {
      if (e.event === 'run_started') portFound(Number(e.grpc_port));
    },
  );
  // The coordinator picks a free port and prints it; the workers are started once it has.
  const port = await Promise.race([
    portSeen,
    coordinator.done.then((code) => {
      throw new Error(`the coordinator exited (${code}) before listening`);
    }),
  ]);
  const workers = Array.from({ length: f.workers }, (_, i) =>
    child(`worker-${i}`, [
      'worker',
      '--coordinator',
      `127.0.0.1:${port}`,
      '--nats',
      nats.url,
      '--worker_id',
      `worker-${i}`,
      '--insecure',
      '--metrics_port',
      '0',
      ...compute,
      '--give_up_after_ms',
      '30000',
    ]),
  );
  try {
    const code = (await coordinator.done) ?? 1;
    await Promise.all(workers.map((w) => w.done));
    if (code === 0)
      console.log(
        `demo: done. The adapter is in ${adapterDir} (PEFT format: adapter_model.safetensors + adapter_config.json)`,
      );
    return code;
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await nats.stop();
  }
}

export const demoCommand: Command = flagCommand({
  name: 'demo',
  summary: 'a small distributed fine-tune on this machine (random-init MPT, real Alpaca data)',
  usage: 'lora-mpt demo [--workers N] [--max_steps N]',
  flags: demoFlags,
  run: runDemo,
});

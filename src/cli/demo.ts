// `lora-mpt demo`: the README's first command. Makes a small randomly initialised MPT (said plainly:
// it has learned nothing, so its text is noise; the point is the machinery), then fine-tunes a LoRA
// adapter on the real Alpaca data with `lora-mpt launch` (a local nats-server, a coordinator and N
// worker processes: the distributed run of a cluster, on this machine), prints where the adapter is,
// and asks it one Alpaca instruction through `lora-mpt generate`'s engine (src/cli/demo-answer.ts).
import { copyFile, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeGenerationFiles } from '../checkpoint/generation-files.ts';
import { familyOf } from '../families/registry.ts';
import { type Command, flagCommand } from './command.ts';
import { numThreadsFlag } from './compute-flags.ts';
import { askAdapter } from './demo-answer.ts';
import { finetuneFlags, runFinetune } from './finetune.ts';
import { type FlagSpecs, type ParsedFlags, parseFlags, UsageError } from './flags.ts';
import { launchFlags, runLaunch } from './launch.ts';
import { eventsFromFlags, reportLogFlags } from './log-flags.ts';

const SHARED = fileURLToPath(new URL('../../../shared/data/', import.meta.url));

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
    help: 'Worker processes, started by `lora-mpt launch` with a local nats-server and a coordinator. 0 runs `lora-mpt finetune` in this process instead.',
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
    help: 'TensorFlow intra-op threads of each worker (or of finetune with --workers 0); 0: the cores shared out, one share per worker.',
  },
  // Passed on to the training it runs; the demo's own lines follow them too.
  ...reportLogFlags,
} as const satisfies FlagSpecs;

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

export async function runDemo(f: ParsedFlags<typeof demoFlags>): Promise<number> {
  const events = eventsFromFlags(f, { label: '' });
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
    events.info(
      'demo',
      `demo: writing a small MPT with RANDOM weights to ${model} (d_model 128, 4 heads, 2 layers, GPT-NeoX vocabulary)`,
    );
    await familyOf('mpt', 'lora-mpt demo').writeRandomCheckpoint(model, {
      dModel: 128,
      nHeads: 4,
      nLayers: 2,
      vocabSize: 50432,
      maxSeqLen: 512,
      seed: 1,
    });
    await copyFile(f.tokenizer, join(model, 'tokenizer.json'));
    // So transformers' generate on the demo's model stops at <|endoftext|> as lora-mpt's does.
    await writeGenerationFiles(model);
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
  // Workers on one machine split its cores rather than each taking all of them (docs/backends.md).
  const threads = f.num_threads || Math.max(1, Math.floor(availableParallelism() / Math.max(1, f.workers)));
  // A demo is read by a person: readable lines (the default) even when its output goes to a file or a pipe.
  const compute = ['--backend', f.backend, '--num_threads', String(threads)];
  const logs = ['--log_format', f.log_format, '--log_level', f.log_level];
  const code =
    f.workers === 0
      ? await runFinetune(parseFlags(finetuneFlags, [...training, ...compute, ...logs]))
      : await runLaunch(
          parseFlags(launchFlags, [...training, ...compute, ...logs, '--nproc_per_node', String(f.workers)]),
        );
  if (code !== 0) return code;
  events.info(
    'demo',
    `demo: done. The adapter is in ${adapterDir} (PEFT format: adapter_model.safetensors + adapter_config.json)`,
  );
  await askAdapter({ baseModel: model, adapter: adapterDir, backend: f.backend });
  return 0;
}

export const demoCommand: Command = flagCommand({
  name: 'demo',
  summary: 'a small distributed fine-tune on this machine (random-init MPT, real Alpaca data)',
  usage: 'lora-mpt demo [--workers N] [--max_steps N]',
  flags: demoFlags,
  run: runDemo,
});

// `lora-mpt <command> [flags]`: dispatches to the sub-commands and turns usage mistakes into a
// one-line error and exit code 2.

import { ModelNotFoundError } from '../hub/models.ts';
import type { Command } from './command.ts';
import { UsageError } from './flags.ts';
import { packageVersion } from './version.ts';

/**
 * Sub-commands, in the order `--help` lists them, each loaded only when it runs: a process imports
 * one command's modules (a worker never loads the generate server), which cuts every start-up.
 * Each issue adds its command here.
 */
const COMMANDS: readonly { readonly name: string; load(): Promise<Command> }[] = [
  { name: 'demo', load: async () => (await import('./demo.ts')).demoCommand },
  { name: 'finetune', load: async () => (await import('./finetune.ts')).finetuneCommand },
  { name: 'launch', load: async () => (await import('./launch.ts')).launchCommand },
  { name: 'coordinator', load: async () => (await import('./coordinator.ts')).coordinatorCommand },
  { name: 'worker', load: async () => (await import('./worker.ts')).workerCommand },
  { name: 'preprocess', load: async () => (await import('./preprocess.ts')).preprocessCommand },
  { name: 'eval', load: async () => (await import('./eval.ts')).evalCommand },
  { name: 'generate', load: async () => (await import('./generate.ts')).generateCommand },
  { name: 'merge', load: async () => (await import('./merge.ts')).mergeCommand },
  { name: 'certs', load: async () => (await import('./certs.ts')).certsCommand },
  { name: 'fetch', load: async () => (await import('./fetch.ts')).fetchCommand },
  { name: 'gpu-check', load: async () => (await import('./gpu-check.ts')).gpuCheckCommand },
  { name: 'probe', load: async () => (await import('./probe.ts')).probeCommand },
];

/** Every sub-command, loaded (for the command list, and tools and tests that check each). */
export async function loadCommands(): Promise<Command[]> {
  const loaded = await Promise.all(COMMANDS.map((c) => c.load()));
  for (const [i, c] of loaded.entries()) {
    if (c.name !== COMMANDS[i]!.name) throw new Error(`main.ts lists "${COMMANDS[i]!.name}" for "${c.name}"`);
  }
  return loaded;
}

async function usage(): Promise<string> {
  const commands = await loadCommands();
  const width = Math.max(8, ...commands.map((c) => c.name.length));
  const list = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: lora-mpt <command> [flags]',
    '',
    'Fine-tune MPT models with LoRA on Alpaca-style instruction data.',
    '',
    'commands:',
    ...(list.length > 0 ? list : ['  (none yet)']),
    '',
    '`lora-mpt <command> --help` explains every flag of a command.',
  ].join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(await usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    console.log(packageVersion());
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    console.error(`lora-mpt: unknown command "${name}"\n\n${await usage()}`);
    return 2;
  }
  try {
    const command = await entry.load();
    if (command.name !== name) throw new Error(`main.ts lists "${name}" for "${command.name}"`);
    return await command.run(rest);
  } catch (err) {
    // Exit 2 is permanent (the chart's podFailurePolicy fails the Job at once): a flag, or a model
    // that is missing or incomplete, will not fix itself by retrying.
    if (err instanceof UsageError || err instanceof ModelNotFoundError) {
      console.error(`lora-mpt ${name}: ${err.message}`);
      return 2;
    }
    // Errors name the bad input and what to do: one line for the user; the stack on request.
    const e = err instanceof Error ? err : new Error(String(err));
    console.error(`lora-mpt ${name}: ${e.message}`);
    if (process.env.LORA_MPT_DEBUG) console.error(e.stack);
    return 1;
  }
}

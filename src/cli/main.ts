// `lora-mpt <command> [flags]`: dispatches to the sub-commands and turns usage mistakes into a
// one-line error and exit code 2.

import { ModelNotFoundError } from '../hub/models.ts';
import { certsCommand } from './certs.ts';
import type { Command } from './command.ts';
import { coordinatorCommand } from './coordinator.ts';
import { demoCommand } from './demo.ts';
import { evalCommand } from './eval.ts';
import { fetchCommand } from './fetch.ts';
import { finetuneCommand } from './finetune.ts';
import { UsageError } from './flags.ts';
import { generateCommand } from './generate.ts';
import { gpuCheckCommand } from './gpu-check.ts';
import { launchCommand } from './launch.ts';
import { mergeCommand } from './merge.ts';
import { preprocessCommand } from './preprocess.ts';
import { probeCommand } from './probe.ts';
import { packageVersion } from './version.ts';
import { workerCommand } from './worker.ts';

/** Sub-commands, in the order `--help` lists them. Each issue adds its command here. */
export const commands: readonly Command[] = [
  demoCommand,
  finetuneCommand,
  launchCommand,
  coordinatorCommand,
  workerCommand,
  preprocessCommand,
  evalCommand,
  generateCommand,
  mergeCommand,
  certsCommand,
  fetchCommand,
  gpuCheckCommand,
  probeCommand,
];

function usage(): string {
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
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    console.log(packageVersion());
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    console.error(`lora-mpt: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
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

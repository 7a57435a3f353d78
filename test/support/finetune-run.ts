// Running `lora-mpt finetune` as a real process on a tiny run, and `lora-mpt eval` in this process
// (its JSON answer's loss): what the finetune end-to-end tests check an adapter with.
import assert from 'node:assert/strict';
import { evalCommand } from '../../src/cli/eval.ts';
import { startLoraMpt } from './processes.ts';
import { runArgs, type TinyRun } from './tiny-run.ts';

export async function finetune(
  name: string,
  run: TinyRun,
  out: string,
  flags: Record<string, string | number | boolean>,
) {
  const p = startLoraMpt(name, ['finetune', ...runArgs(run, out, flags)]);
  return { code: await p.exited(), p };
}

/** `lora-mpt eval ARGV --json`'s loss (argv must include --json). */
export async function evalLoss(argv: string[]): Promise<number> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    assert.equal(await evalCommand.run(argv), 0);
  } finally {
    console.log = log;
  }
  return (JSON.parse(lines.join('\n')) as { loss: number }).loss;
}

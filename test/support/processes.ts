// Starts real `lora-mpt` processes for integration tests (coordinator, workers, finetune), collects
// their output and structured events (test/support/lora-output.ts), and kills them (SIGKILL for fault
// tests). Every process a test starts is killed when the test file ends, whatever happened.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { collectOutput, type LoraCommand } from './lora-output.ts';

export type { LoraCommand, LoraEvent } from './lora-output.ts';

const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));

export interface LoraProcess extends LoraCommand {
  readonly child: ChildProcess;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export function startLoraMpt(
  name: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  /** A command the process runs under, e.g. `['prlimit', '--nofile=256:256']`. */
  wrap: readonly string[] = [],
): LoraProcess {
  return startNode(name, [BIN, ...args], env, wrap);
}

/** Starts `node <argv>` (a script and its arguments) as startLoraMpt starts the command. */
export function startNode(
  name: string,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = {},
  /** A command the process runs under, e.g. `['prlimit', '--nofile=256:256']`. */
  wrap: readonly string[] = [],
): LoraProcess {
  const [cmd, ...pre] = [...wrap, process.execPath];
  const child = spawn(cmd!, [...pre, ...argv], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const out = collectOutput(name);
  child.stdout?.on('data', (chunk: Buffer) => out.add(chunk, 'stdout'));
  child.stderr?.on('data', (chunk: Buffer) => out.add(chunk, 'stderr'));
  const exit = new Promise<number | null>((resolve) => {
    // 'close', not 'exit': by then stdout and stderr are drained, so every event is in.
    child.once('close', (code, signal) => {
      live.delete(child);
      out.end(String(code ?? signal));
      resolve(code);
    });
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    ...out,
    child,
    exited: () => exit,
    signal(signal) {
      if (running()) child.kill(signal);
    },
    async kill(signal = 'SIGKILL') {
      if (!running()) return;
      child.kill(signal);
      await exit;
    },
  };
}

// Starts many worker sessions in one process (worker-pool-main.ts): COUNT workers with ids
// PREFIX0..PREFIX<COUNT-1>, each taking `flags` as `lora-mpt worker` would.
import { fileURLToPath } from 'node:url';
import { type LoraProcess, startNode } from './processes.ts';

const MAIN = fileURLToPath(new URL('./worker-pool-main.ts', import.meta.url));

export function startWorkerPool(
  name: string,
  count: number,
  prefix: string,
  flags: readonly string[],
): LoraProcess {
  return startNode(name, ['--import', 'tsx', MAIN, String(count), prefix, ...flags]);
}

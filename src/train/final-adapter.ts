// Writes the run's result, the PEFT adapter, into OUTPUT_DIR without ever leaving a half-written
// pair behind: the files are built in a temporary folder (fsynced), then each is renamed into place.
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ADAPTER_CONFIG, ADAPTER_SAFETENSORS } from '../checkpoint/peft-adapter.ts';
import { writeDirAtomic } from './atomic-write.ts';

export async function writeFinalAdapter(
  outputDir: string,
  write: (dir: string) => Promise<void>,
): Promise<void> {
  const stage = join(outputDir, `.final-adapter-${randomBytes(4).toString('hex')}`);
  await writeDirAtomic(stage, write);
  for (const f of [ADAPTER_SAFETENSORS, ADAPTER_CONFIG]) await rename(join(stage, f), join(outputDir, f));
  await rm(stage, { recursive: true, force: true });
}

// Material for end-to-end runs in tests: a tiny randomly initialised MPT (real config.json,
// model.safetensors and the real GPT-NeoX tokenizer.json) and a slice of the real Alpaca data, cut
// from ../shared/data at run time into a temporary directory.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RandomMptSpec, writeRandomMpt } from '../../src/model/random-init.ts';

export const SHARED_TOKENIZER = fileURLToPath(
  new URL('../../../shared/data/gpt-neox-20b/tokenizer.json', import.meta.url),
);
export const SHARED_ALPACA = fileURLToPath(new URL('../../../shared/data/alpaca_data.json', import.meta.url));

export interface TinyRun {
  readonly dir: string;
  readonly model: string;
  readonly data: string;
  cleanup(): void;
}

let alpaca: unknown[] | undefined;

const TINY: RandomMptSpec = { dModel: 32, nHeads: 4, nLayers: 2, vocabSize: 50432, maxSeqLen: 256, seed: 7 };

/** A temporary folder with `model/` (default: d_model 32, 2 layers, GPT-NeoX vocabulary) and `data.json` (rows [from, to)). */
export async function tinyRun(
  rows: readonly [number, number] = [0, 160],
  spec: RandomMptSpec = TINY,
): Promise<TinyRun> {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-run-'));
  const model = join(dir, 'model');
  await writeRandomMpt(model, spec);
  copyFileSync(SHARED_TOKENIZER, join(model, 'tokenizer.json'));
  alpaca ??= JSON.parse(readFileSync(SHARED_ALPACA, 'utf8')) as unknown[];
  const data = join(dir, 'data.json');
  writeFileSync(data, JSON.stringify(alpaca.slice(rows[0], rows[1])));
  return { dir, model, data, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

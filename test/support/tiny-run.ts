// Material for end-to-end runs in tests: a tiny randomly initialised MPT (real config.json,
// model.safetensors and the real GPT-NeoX tokenizer.json) and a slice of the real Alpaca data, cut
// from ../shared/data at run time into a temporary directory.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RandomMptSpec, writeRandomMpt } from '../../src/families/mpt/random-checkpoint.ts';

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

/**
 * Training flags for `run` writing to `out`: base_model, data_path and output_dir, then `flags` in
 * order (`true` → `--name`, `false` → `--name=False`, anything else → `--name value`).
 */
export function runArgs(
  run: Pick<TinyRun, 'model' | 'data'>,
  out: string,
  flags: Readonly<Record<string, string | number | boolean>>,
): string[] {
  const args = ['--base_model', run.model, '--data_path', run.data, '--output_dir', out];
  for (const [name, v] of Object.entries(flags)) {
    if (v === true) args.push(`--${name}`);
    else if (v === false) args.push(`--${name}=False`);
    else args.push(`--${name}`, String(v));
  }
  return args;
}

// A base model described by its config.json alone, for the synthetic backend (docs/scale.md):
// `synthetic:<name>` is a family's published config (synthetic:mpt-7b), `synthetic:<path>` a
// config.json or a directory holding one. No weight file is ever opened, so the coordinator and every
// worker agree on the model by the config's bytes, and a real worker cannot join a synthetic run.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ModelConfig } from '../checkpoint/architecture.ts';
import { FAMILIES, parseModelConfig } from './registry.ts';

export const SYNTHETIC_MODEL_PREFIX = 'synthetic:';

export function isSyntheticModel(baseModel: string): boolean {
  return baseModel.startsWith(SYNTHETIC_MODEL_PREFIX);
}

export interface SyntheticModel {
  readonly baseModel: string;
  readonly config: ModelConfig;
  /** From the config's bytes: the same config gives the same fingerprint on every machine. */
  readonly fingerprint: string;
  /** Where the config came from, for logs: its file, or "the published mpt-7b config". */
  readonly source: string;
  /** tokenizer.json beside a config file, when there is one. */
  readonly tokenizerJson: string | null;
}

/** The names `synthetic:<name>` accepts, from every family. */
export function namedConfigNames(): string[] {
  return FAMILIES.flatMap((f) => Object.keys(f.namedConfigs));
}

const exists = (p: string) =>
  stat(p).then(
    (s) => s,
    () => undefined,
  );

/** Reads the config `baseModel` (synthetic:...) names; throws naming it and what is wrong. */
export async function openSyntheticModel(baseModel: string): Promise<SyntheticModel> {
  if (!isSyntheticModel(baseModel)) {
    throw new Error(`base model ${baseModel}: not a synthetic model (expected ${SYNTHETIC_MODEL_PREFIX}...)`);
  }
  const what = baseModel.slice(SYNTHETIC_MODEL_PREFIX.length);
  const named = FAMILIES.find((f) => Object.hasOwn(f.namedConfigs, what))?.namedConfigs[what];
  let bytes: Buffer;
  let source: string;
  let tokenizerJson: string | null = null;
  if (named !== undefined) {
    bytes = Buffer.from(JSON.stringify(named));
    source = `the published ${what} config`;
  } else {
    const found = what === '' ? undefined : await exists(what);
    if (found === undefined) {
      throw new Error(
        `--base_model ${baseModel}: "${what}" is neither a named config (${namedConfigNames().join(', ')}) nor a config.json or a directory holding one`,
      );
    }
    source = found.isDirectory() ? join(what, 'config.json') : what;
    bytes = await readFile(source).catch(() => {
      throw new Error(`--base_model ${baseModel}: ${source} cannot be read`);
    });
    const tokenizer = join(dirname(source), 'tokenizer.json');
    if (await exists(tokenizer)) tokenizerJson = tokenizer;
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
  const h = createHash('sha256').update('lora-mpt synthetic model v1\n').update(bytes);
  return {
    baseModel,
    config: parseModelConfig(json, source),
    fingerprint: `synthetic-${h.digest('hex')}`,
    source,
    tokenizerJson,
  };
}

// BOS and EOS of a model, from the tokenizer_config.json beside its tokenizer.json, as transformers
// reads them: `bos_token` / `eos_token` are a token string or an AddedToken object with `content`.
// tokenizer.json alone does not say which token ends a sequence (Llama 2: </s>; Llama 3 base:
// <|end_of_text|>, instruct: <|eot_id|>), and alpaca-lora appends exactly that id.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Tokenizer } from './tokenizer.ts';
import { asObject } from './tokenizer-json.ts';

export interface SpecialTokenIds {
  /** The BOS id, or null when the config names none. */
  readonly bos: number | null;
  /** The EOS id, or null when the config names none. */
  readonly eos: number | null;
}

/** Reads bos_token and eos_token of `path` (a tokenizer_config.json) as ids of `tokenizer`. */
export function readSpecialTokenIds(path: string, tokenizer: Tokenizer): SpecialTokenIds {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: cannot read tokenizer_config.json (${(err as Error).message})`);
  }
  const config = asObject(json, path, '(top level)');
  const idOf = (field: 'bos_token' | 'eos_token'): number | null => {
    const v = config[field];
    if (v === undefined || v === null) return null;
    const content = typeof v === 'string' ? v : asObject(v, path, field).content;
    if (typeof content !== 'string')
      throw new Error(`${path}: ${field} is ${JSON.stringify(v)}, not a token string or {"content": ...}`);
    const id = tokenizer.tokenToId(content);
    if (id === undefined)
      throw new Error(`${path}: ${field} ${JSON.stringify(content)} is not a token of the tokenizer`);
    return id;
  };
  return { bos: idOf('bos_token'), eos: idOf('eos_token') };
}

/** The tokenizer_config.json transformers reads for `tokenizerJson`: the file beside it. */
export function tokenizerConfigBeside(tokenizerJson: string): string {
  return join(dirname(tokenizerJson), 'tokenizer_config.json');
}

/** GPT-NeoX's (MPT's) bos = eos = unk, for folders that ship no tokenizer_config.json. */
const NEOX_EOS = '<|endoftext|>';

/**
 * The EOS (and BOS) a run appends and stops at, for the tokenizer.json at `tokenizerJson`: what the
 * tokenizer_config.json beside it names (Llama 2: </s>, Llama 3: <|end_of_text|> or <|eot_id|>), else
 * <|endoftext|> (MPT's GPT-NeoX folders made before lora-mpt wrote that file). BOS needs no appending
 * here: the tokenizer's post-processor adds it, so it is only reported. Throws naming both files when
 * neither gives an EOS.
 */
export function eosAndBos(tokenizerJson: string, tokenizer: Tokenizer): { eos: number; bos: number | null } {
  const configPath = tokenizerConfigBeside(tokenizerJson);
  const fromConfig = existsSync(configPath) ? readSpecialTokenIds(configPath, tokenizer) : null;
  if (fromConfig !== null && fromConfig.eos !== null) return { eos: fromConfig.eos, bos: fromConfig.bos };
  const neox = tokenizer.tokenToId(NEOX_EOS);
  if (neox === undefined) {
    throw new Error(
      `${tokenizerJson}: no EOS token: ${fromConfig ? `${configPath} names no eos_token` : `no ${configPath}`} and the tokenizer has no ${NEOX_EOS}`,
    );
  }
  return { eos: neox, bos: fromConfig?.bos ?? neox };
}

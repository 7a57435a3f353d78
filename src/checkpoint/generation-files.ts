// generation_config.json and tokenizer_config.json beside a model lora-mpt writes (merge, the demo's
// base), as transformers 5.24 writes them with save_pretrained: without them transformers' generate
// has no EOS and never stops where lora-mpt's generate stops (at <|endoftext|>, id 0 for MPT's
// GPT-NeoX tokenizer). Keys and values are checked against transformers' own output
// (tools/reference/make_merge_config_fixtures.py -> test/fixtures/merge-configs/).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

type Json = Record<string, unknown>;

/** The token lora-mpt's generate stops at, and MPT's bos/eos/unk. */
export const EOS_TOKEN = '<|endoftext|>';
const PAD_TOKEN = '<|padding|>';

/** transformers writes its JSON with sorted keys and two-space indents, and a final newline. */
const asTransformersJson = (o: Json) =>
  `${JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), null, 2)}\n`;

/** The id of `token` in a tokenizer.json (its added tokens, then the model's vocabulary). */
export function tokenIdOf(tokenizer: Json, token: string): number | null {
  const added = (tokenizer.added_tokens as { id?: unknown; content?: unknown }[] | undefined) ?? [];
  const hit = added.find((t) => t.content === token);
  if (typeof hit?.id === 'number') return hit.id;
  const vocab = (tokenizer.model as { vocab?: Record<string, unknown> } | undefined)?.vocab;
  const id = vocab?.[token];
  return typeof id === 'number' ? id : null;
}

/**
 * What save_pretrained writes after `GenerationConfig.from_model_config(config)` with bos/eos set to
 * the tokenizer's (MPT: <|endoftext|>; Llama: tokenizer_config.json's bos_token / eos_token): the base's own generation_config.json when it has one (its bos/eos
 * filled in when missing), else `_from_model_config`, `use_cache` (MptConfig's default: false) and
 * the version of transformers the config names.
 */
export function generationConfig(
  config: Json,
  base: Json | null,
  eosId: number | null,
  bosId: number | null = eosId,
): Json {
  const out: Json = base
    ? { ...base }
    : {
        _from_model_config: true,
        use_cache: typeof config.use_cache === 'boolean' ? config.use_cache : false,
        ...(typeof config.transformers_version === 'string'
          ? { transformers_version: config.transformers_version }
          : {}),
      };
  if (bosId !== null && (out.bos_token_id === undefined || out.bos_token_id === null))
    out.bos_token_id = bosId;
  if (eosId !== null && (out.eos_token_id === undefined || out.eos_token_id === null))
    out.eos_token_id = eosId;
  return out;
}

/**
 * What transformers' GPTNeoXTokenizer (MPT's tokenizer class) writes as tokenizer_config.json for
 * this tokenizer.json with bos = eos = unk = <|endoftext|>; null when the tokenizer has no
 * <|endoftext|> (not an MPT tokenizer: nothing is guessed). pad_token is written only when the
 * vocabulary has <|padding|> (transformers would otherwise add a token the embeddings lack).
 */
export function tokenizerConfig(tokenizer: Json, modelMaxLength: number): Json | null {
  if (tokenIdOf(tokenizer, EOS_TOKEN) === null) return null;
  const pre = tokenizer.pre_tokenizer as { add_prefix_space?: unknown } | null | undefined;
  const post = tokenizer.post_processor as { trim_offsets?: unknown } | null | undefined;
  return {
    add_prefix_space: typeof pre?.add_prefix_space === 'boolean' ? pre.add_prefix_space : false,
    backend: 'tokenizers',
    bos_token: EOS_TOKEN,
    eos_token: EOS_TOKEN,
    errors: 'replace',
    model_max_length: modelMaxLength,
    ...(tokenIdOf(tokenizer, PAD_TOKEN) !== null ? { pad_token: PAD_TOKEN } : {}),
    tokenizer_class: 'GPTNeoXTokenizer',
    trim_offsets: typeof post?.trim_offsets === 'boolean' ? post.trim_offsets : true,
    unk_token: EOS_TOKEN,
  };
}

async function readJson(path: string): Promise<Json | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    return JSON.parse(text) as Json;
  } catch (err) {
    throw new Error(`${path}: not JSON (${(err as Error).message})`);
  }
}

/**
 * Writes generation_config.json (always: filled from `baseDir`'s when it has one) and, when
 * `dir` has none yet, tokenizer_config.json, for the config.json and tokenizer.json in `dir`.
 * Returns the names written.
 */
export async function writeGenerationFiles(dir: string, baseDir: string = dir): Promise<string[]> {
  const config = (await readJson(join(dir, 'config.json'))) ?? {};
  const tokenizer = await readJson(join(dir, 'tokenizer.json'));
  // A tokenizer_config.json copied from the base (every Llama on the Hub has one) names BOS and EOS;
  // without one the tokenizer is taken as GPT-NeoX's, bos = eos = <|endoftext|>.
  const named = await readJson(join(dir, 'tokenizer_config.json'));
  const idOf = (field: 'bos_token' | 'eos_token'): number | null => {
    if (!tokenizer) return null;
    const v = named?.[field] ?? EOS_TOKEN;
    const content = typeof v === 'object' && v !== null ? (v as { content?: unknown }).content : v;
    return typeof content === 'string' ? tokenIdOf(tokenizer, content) : null;
  };
  const base = await readJson(join(baseDir, 'generation_config.json'));
  await writeFile(
    join(dir, 'generation_config.json'),
    asTransformersJson(generationConfig(config, base, idOf('eos_token'), idOf('bos_token'))),
  );
  const written = ['generation_config.json'];
  if (tokenizer && (await readJson(join(dir, 'tokenizer_config.json'))) === null) {
    const maxLen = typeof config.max_seq_len === 'number' ? config.max_seq_len : 2048;
    const tc = tokenizerConfig(tokenizer, maxLen);
    if (tc) {
      await writeFile(join(dir, 'tokenizer_config.json'), asTransformersJson(tc));
      written.push('tokenizer_config.json');
    }
  }
  return written;
}

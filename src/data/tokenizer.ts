// The model's tokenizer, read from its Hugging Face tokenizer.json: added tokens, NFC, byte-level
// GPT-2 pre-tokenization and BPE; decode through the ByteLevel decoder. Supports exactly what
// GPT-NeoX/MPT tokenizers use and rejects other configurations by name rather than guessing.
import { readFileSync, statSync } from 'node:fs';
import { excessiveNesting } from '../formats/json-depth.ts';
import { type AddedToken, AddedTokenMatcher, type Piece } from './added-tokens.ts';
import { BpeModel } from './bpe.ts';
import { decodeByteLevel, splitPreTokens, toByteLevel } from './byte-level.ts';

interface Json {
  readonly [key: string]: unknown;
}

/** Real tokenizer.json files are 2 MB (GPT-NeoX) to ~17 MB (Gemma); this bounds a hostile one. */
const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;
/** Real files nest about six levels (a Sequence of pre-tokenizers with a Split pattern object). */
const MAX_TOKENIZER_DEPTH = 32;

export interface DecodeOptions {
  /** Leave out special added tokens such as <|endoftext|> (HF `tokenizers` default: true). */
  readonly skipSpecialTokens?: boolean;
}

export class Tokenizer {
  private readonly rawMatcher: AddedTokenMatcher;
  private readonly normalizedMatcher: AddedTokenMatcher;
  private readonly idToToken = new Map<number, string>();
  private readonly tokenToIdMap = new Map<string, number>();
  private readonly specialIds = new Set<number>();

  private constructor(
    private readonly model: BpeModel,
    vocab: ReadonlyMap<string, number>,
    added: readonly AddedToken[],
    private readonly nfc: boolean,
  ) {
    for (const [tok, id] of vocab) {
      this.idToToken.set(id, tok);
      this.tokenToIdMap.set(tok, id);
    }
    for (const t of added) {
      this.idToToken.set(t.id, t.content);
      this.tokenToIdMap.set(t.content, t.id);
      if (t.special) this.specialIds.add(t.id);
    }
    this.rawMatcher = new AddedTokenMatcher(added.filter((t) => !t.normalized));
    this.normalizedMatcher = new AddedTokenMatcher(added.filter((t) => t.normalized));
  }

  /** Reads a tokenizer.json file; errors name the file and the unsupported field. */
  static fromFile(path: string): Tokenizer {
    let text: string;
    try {
      const bytes = statSync(path).size;
      if (bytes > MAX_TOKENIZER_BYTES)
        throw new Error(`${bytes} bytes is over the ${MAX_TOKENIZER_BYTES}-byte limit for a tokenizer.json`);
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`${path}: cannot read tokenizer.json (${(err as Error).message})`);
    }
    const deep = excessiveNesting(text, MAX_TOKENIZER_DEPTH);
    if (deep !== null)
      throw new Error(
        `${path}: tokenizer.json nests deeper than ${MAX_TOKENIZER_DEPTH} levels at character ${deep.offset}`,
      );
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new Error(`${path}: cannot read tokenizer.json (${(err as Error).message})`);
    }
    return Tokenizer.fromJson(json, path);
  }

  static fromJson(json: unknown, where: string): Tokenizer {
    const root = asObject(json, where, '(top level)');
    const model = asObject(root.model, where, 'model');
    if (model.type !== 'BPE') unsupported(where, 'model.type', model.type, '"BPE"');
    for (const field of ['dropout', 'continuing_subword_prefix', 'end_of_word_suffix'] as const)
      if (model[field] !== null && model[field] !== undefined && model[field] !== '')
        unsupported(where, `model.${field}`, model[field], 'null');
    if (model.byte_fallback === true) unsupported(where, 'model.byte_fallback', true, 'false');
    if (model.ignore_merges === true) unsupported(where, 'model.ignore_merges', true, 'false');

    const normalizer = root.normalizer as Json | null | undefined;
    if (normalizer != null && normalizer.type !== 'NFC')
      unsupported(where, 'normalizer.type', normalizer.type, '"NFC" or null');
    const pre = asObject(root.pre_tokenizer, where, 'pre_tokenizer');
    if (pre.type !== 'ByteLevel') unsupported(where, 'pre_tokenizer.type', pre.type, '"ByteLevel"');
    if (pre.add_prefix_space === true) unsupported(where, 'pre_tokenizer.add_prefix_space', true, 'false');
    if (pre.use_regex === false) unsupported(where, 'pre_tokenizer.use_regex', false, 'true');
    const decoder = root.decoder as Json | null | undefined;
    if (decoder != null && decoder.type !== 'ByteLevel')
      unsupported(where, 'decoder.type', decoder.type, '"ByteLevel"');

    const vocab = new Map(Object.entries(asObject(model.vocab, where, 'model.vocab')) as [string, number][]);
    if (!Array.isArray(model.merges)) throw new Error(`${where}: model.merges is not a list`);
    const added = parseAddedTokens(root.added_tokens, where);
    return new Tokenizer(
      new BpeModel(vocab, model.merges as (string | [string, string])[], where),
      vocab,
      added,
      normalizer != null,
    );
  }

  /** Token ids of `text`; adds no special tokens (GPT-NeoX's post-processor adds none). */
  encode(text: string): number[] {
    const out: number[] = [];
    const raw: Piece[] = [];
    this.rawMatcher.split(text, raw);
    for (const part of raw) {
      if (typeof part === 'number') {
        out.push(part);
        continue;
      }
      const pieces: Piece[] = [];
      this.normalizedMatcher.split(this.nfc ? part.normalize('NFC') : part, pieces);
      for (const piece of pieces) {
        if (typeof piece === 'number') {
          out.push(piece);
          continue;
        }
        // A loop, not push(...ids): one pre-token can be a megabyte of text, past the call stack.
        for (const word of splitPreTokens(piece))
          for (const id of this.model.encodeWord(word, () => toByteLevel(word))) out.push(id);
      }
    }
    return out;
  }

  /** Text of `ids`, as HF's `Tokenizer.decode`. Unknown ids are skipped, as HF does. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const tok = this.idToToken.get(id);
      if (tok === undefined || (skip && this.specialIds.has(id))) continue;
      tokens.push(tok);
    }
    return decodeByteLevel(tokens);
  }

  /** The id of a token string (vocab or added), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.tokenToIdMap.get(token);
  }

  /** The token string of an id (vocab or added), or undefined. */
  tokenOf(id: number): string | undefined {
    return this.idToToken.get(id);
  }

  /** Number of ids the tokenizer can produce (vocab + added tokens): 50,277 for GPT-NeoX-20B. */
  get size(): number {
    return this.idToToken.size;
  }
}

function asObject(v: unknown, where: string, field: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error(`${where}: ${field} is missing or not an object`);
  return v as Json;
}

function unsupported(where: string, field: string, got: unknown, want: string): never {
  throw new Error(
    `${where}: ${field} is ${JSON.stringify(got)}; lora-mpt's tokenizer supports only ${want} ` +
      '(GPT-NeoX / MPT byte-level BPE)',
  );
}

function parseAddedTokens(v: unknown, where: string): AddedToken[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`${where}: added_tokens is not a list`);
  return v.map((t: unknown, i: number) => {
    const o = asObject(t, where, `added_tokens[${i}]`);
    if (typeof o.id !== 'number' || typeof o.content !== 'string')
      throw new Error(`${where}: added_tokens[${i}] needs a numeric "id" and a string "content"`);
    for (const flag of ['single_word', 'lstrip', 'rstrip'] as const)
      if (o[flag] === true) unsupported(where, `added_tokens[${i}].${flag}`, true, 'false');
    const special = o.special === true;
    // HF's default when the flag is absent: special tokens are matched raw, others normalized.
    const normalized = typeof o.normalized === 'boolean' ? o.normalized : !special;
    return { id: o.id, content: o.content, special, normalized };
  });
}

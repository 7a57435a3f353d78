// The model's tokenizer, read from its Hugging Face tokenizer.json and run as HF `tokenizers` runs it:
// added tokens, normalizer, pre-tokenizer, BPE, post-processor; decode through the decoder chain.
// It implements the pipelines of GPT-NeoX / MPT (byte-level BPE), Llama 2 and its Metaspace
// conversions (SentencePiece-style BPE with byte fallback) and Llama 3 (byte-level BPE with a split
// regex); any other component or flag is refused by name (file, field) rather than guessed.
import { readFileSync, statSync } from 'node:fs';
import { excessiveNesting } from '../formats/json-depth.ts';
import { type AddedToken, AddedTokenMatcher, type Piece } from './added-tokens.ts';
import { BpeModel } from './bpe.ts';
import { toByteLevel } from './byte-level.ts';
import { type Decoder, parseDecoder } from './decoders.ts';
import { type Normalizer, parseNormalizer } from './normalizers.ts';
import { parsePostProcessor, type SpecialAround } from './post-processor.ts';
import { PreTokenizer } from './pre-tokenizers.ts';
import { asObject, unsupported } from './tokenizer-json.ts';

/** Real tokenizer.json files are 2 MB (GPT-NeoX) to ~17 MB (Gemma); this bounds a hostile one. */
const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;
/** Real files nest about six levels (a Sequence of pre-tokenizers with a Split pattern object). */
const MAX_TOKENIZER_DEPTH = 32;

export interface EncodeOptions {
  /** Add the post-processor's special tokens, e.g. Llama's BOS (HF `tokenizers` default: true). */
  readonly addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out special added tokens such as <|endoftext|> (HF `tokenizers` default: true). */
  readonly skipSpecialTokens?: boolean;
}

/** The parts of a tokenizer.json, in the order HF runs them. */
interface Pipeline {
  readonly model: BpeModel;
  readonly vocab: ReadonlyMap<string, number>;
  readonly added: readonly AddedToken[];
  readonly normalizer: Normalizer | null;
  readonly pre: PreTokenizer;
  readonly around: SpecialAround;
  readonly decoder: Decoder;
}

export class Tokenizer {
  private readonly rawMatcher: AddedTokenMatcher;
  private readonly normalizedMatcher: AddedTokenMatcher;
  private readonly idToToken = new Map<number, string>();
  private readonly tokenToIdMap = new Map<string, number>();
  private readonly specialIds = new Set<number>();
  /** Words may be cut before each run of ▁ (see canSplitAtMarks): same ids, and cacheable. */
  private readonly markSplit: boolean;

  private constructor(private readonly p: Pipeline) {
    for (const [tok, id] of p.vocab) {
      this.idToToken.set(id, tok);
      this.tokenToIdMap.set(tok, id);
    }
    // HF keeps a normalized added token by its normalized content (Llama 2's normalizer makes "<s>"
    // "▁<s>"): it is matched and decoded as that, and is not skipped as special unless unchanged.
    const norm = p.normalizer ?? ((x: string) => x);
    const added = p.added.map((t) => (t.normalized ? { ...t, content: norm(t.content) } : t));
    p.added.forEach((t, i) => {
      const stored = added[i]!.content;
      this.idToToken.set(t.id, stored);
      this.tokenToIdMap.set(stored, t.id);
      this.tokenToIdMap.set(t.content, t.id);
      if (t.special && stored === t.content) this.specialIds.add(t.id);
    });
    this.rawMatcher = new AddedTokenMatcher(added.filter((t) => !t.normalized));
    this.normalizedMatcher = new AddedTokenMatcher(added.filter((t) => t.normalized));
    this.markSplit = !p.pre.byteLevel && canSplitAtMarks(p.vocab);
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
    const vocab = new Map(Object.entries(asObject(model.vocab, where, 'model.vocab')) as [string, number][]);
    if (!Array.isArray(model.merges)) throw new Error(`${where}: model.merges is not a list`);
    let unkId: number | undefined;
    if (model.unk_token !== null && model.unk_token !== undefined) {
      unkId = vocab.get(model.unk_token as string);
      if (unkId === undefined)
        throw new Error(`${where}: model.unk_token ${JSON.stringify(model.unk_token)} is not in model.vocab`);
    }
    const bpe = new BpeModel(vocab, model.merges as (string | [string, string])[], where, {
      unkId,
      fuseUnk: model.fuse_unk === true,
      byteFallback: model.byte_fallback === true,
      ignoreMerges: model.ignore_merges === true,
    });
    return new Tokenizer({
      model: bpe,
      vocab,
      added: parseAddedTokens(root.added_tokens, where),
      normalizer: parseNormalizer(root.normalizer, where),
      pre: PreTokenizer.parse(root.pre_tokenizer, where),
      around: parsePostProcessor(root.post_processor, where),
      decoder: parseDecoder(root.decoder, where),
    });
  }

  /**
   * Token ids of `text`, as HF's `Tokenizer.encode`: with the post-processor's special tokens unless
   * addSpecialTokens is false (Llama 2 / 3: BOS first, no EOS; GPT-NeoX: none).
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const add = options.addSpecialTokens ?? true;
    const out: number[] = add ? [...this.p.around.before] : [];
    const raw: Piece[] = [];
    this.rawMatcher.split(text, raw);
    // Metaspace's prepend_scheme "first" prepends only to the piece at the start of the text.
    let atStart = true;
    for (const part of raw) {
      if (typeof part === 'number') {
        out.push(part);
        atStart = false;
        continue;
      }
      const pieces: Piece[] = [];
      this.normalizedMatcher.split(this.p.normalizer === null ? part : this.p.normalizer(part), pieces);
      for (const piece of pieces) {
        if (typeof piece === 'number') out.push(piece);
        else this.encodePiece(piece, atStart, out);
        atStart = false;
      }
    }
    if (add) for (const id of this.p.around.after) out.push(id);
    return out;
  }

  private encodePiece(piece: string, atStart: boolean, out: number[]): void {
    const spell = this.p.pre.byteLevel ? toByteLevel : (w: string) => Array.from(w);
    // A loop, not push(...ids): one pre-token can be a megabyte of text, past the call stack.
    for (const word of this.p.pre.split(piece, atStart))
      for (const w of this.markSplit ? (word.match(MARK_RUNS) ?? []) : [word])
        for (const id of this.p.model.encodeWord(w, () => spell(w))) out.push(id);
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
    return this.p.decoder(tokens).join('');
  }

  /** The ids the post-processor puts before and after the text (Llama: [BOS] and []). */
  get specialAround(): SpecialAround {
    return this.p.around;
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

/** SentencePiece's word mark: a run of marks, then the rest of the word. */
const MARK = '\u2581';
const MARK_RUNS = new RegExp(`${MARK}*[^${MARK}]+|${MARK}+`, 'gu');

/**
 * Llama 2's pipeline has no pre-tokenizer: a whole piece of text is one BPE word, which HF merges
 * in one heap, uncached. When ▁ is in the vocab and no token has a ▁ right after another
 * character, no merge can join across the place before a run of ▁, so cutting words there gives
 * the same ids (BPE merges each part as it would inside the whole) and lets short words be cached.
 */
function canSplitAtMarks(vocab: ReadonlyMap<string, number>): boolean {
  if (!vocab.has(MARK)) return false;
  for (const token of vocab.keys()) if (/[^\u2581]\u2581/u.test(token)) return false;
  return true;
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

// The BPE model of a tokenizer.json: turns one byte-level pre-token into vocabulary ids by applying
// the ranked merges, lowest rank first, left to right (what HF's word merge does without dropout).
// Results are cached per pre-token, as HF does, which makes natural text cheap to tokenize.

/** Pair keys pack two ids in one number; 2^21 leaves room for vocabularies of up to 2M entries. */
const PAIR = 2 ** 21;
/** The cache is cleared when it reaches this many words, so memory stays bounded on huge corpora. */
const CACHE_LIMIT = 200_000;

export class BpeModel {
  private readonly rank = new Map<number, number>();
  private readonly merged = new Map<number, number>();
  private readonly cache = new Map<string, readonly number[]>();

  /**
   * @param vocab token string -> id, as in `model.vocab`.
   * @param merges `model.merges`: "left right" strings (format 1.0) or [left, right] pairs.
   * @param where names the file for errors.
   */
  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    merges: readonly (string | readonly [string, string])[],
    where: string,
  ) {
    for (const [id] of vocab.entries())
      if (id.length === 0) throw new Error(`${where}: empty token in vocab`);
    merges.forEach((m, i) => {
      const [left, right] = typeof m === 'string' ? splitMerge(m, where, i) : m;
      const a = vocab.get(left);
      const b = vocab.get(right);
      const c = vocab.get(left + right);
      if (a === undefined || b === undefined || c === undefined)
        throw new Error(
          `${where}: model.merges[${i}] "${left} ${right}" uses a token missing from the vocab`,
        );
      const key = a * PAIR + b;
      // A repeated pair keeps its first (lowest) rank.
      if (!this.rank.has(key)) {
        this.rank.set(key, i);
        this.merged.set(key, c);
      }
    });
  }

  /**
   * Ids of one pre-token. `key` is the cache key (the raw text of the pre-token); `symbols` its
   * byte-level characters, computed only on a cache miss. Symbols missing from the vocab are
   * dropped, as HF's BPE does when the model has no unk_token.
   */
  encodeWord(key: string, symbols: () => readonly string[]): readonly number[] {
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const ids = this.merge(symbols());
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(key, ids);
    return ids;
  }

  private merge(symbols: readonly string[]): number[] {
    let ids: number[] = [];
    for (const s of symbols) {
      const id = this.vocab.get(s);
      if (id !== undefined) ids.push(id);
    }
    while (ids.length > 1) {
      let bestRank = Number.POSITIVE_INFINITY;
      let bestKey = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const key = ids[i]! * PAIR + ids[i + 1]!;
        const r = this.rank.get(key);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          bestKey = key;
        }
      }
      if (bestKey < 0) break;
      // Merge every occurrence of the best pair, left to right, without overlaps ("a a a" -> "aa a").
      const a = Math.floor(bestKey / PAIR);
      const b = bestKey % PAIR;
      const c = this.merged.get(bestKey)!;
      const next: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
          next.push(c);
          i++;
        } else next.push(ids[i]!);
      }
      ids = next;
    }
    return ids;
  }
}

function splitMerge(m: string, where: string, i: number): [string, string] {
  const sp = m.indexOf(' ', 1);
  if (sp < 0) throw new Error(`${where}: model.merges[${i}] "${m}" is not "left right"`);
  return [m.slice(0, sp), m.slice(sp + 1)];
}

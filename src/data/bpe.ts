// The BPE model of a tokenizer.json: turns one pre-token into vocabulary ids by applying the ranked
// merges, lowest rank first, leftmost first (HF's Word::merge_all, without dropout). A character
// missing from the vocab becomes its <0xNN> byte tokens (byte_fallback, Llama 2), else the unk token
// (consecutive ones fused with fuse_unk), else is dropped, as HF's BPE::merge_word does. Results are
// cached per pre-token, as HF does, which makes natural text cheap to tokenize.
/** Pair keys pack two ids in one number; 2^21 leaves room for vocabularies of up to 2M entries. */
const PAIR = 2 ** 21;
/** The cache is cleared when it reaches this many words, so memory stays bounded on huge corpora. */
const CACHE_LIMIT = 200_000;
/** Longer pre-tokens are not cached (HF: 256 bytes); Llama 2's are whole pieces of text. */
const CACHE_MAX_KEY = 256;
/** Words up to this many symbols use the quadratic loop; longer ones the O(n log n) heap. */
const SHORT_WORD = 48;

export interface BpeOptions {
  /** The unk token's id (model.unk_token), or undefined: unknown characters are dropped. */
  readonly unkId?: number;
  /** Consecutive unknown characters become one unk (model.fuse_unk). */
  readonly fuseUnk?: boolean;
  /** Unknown characters become their UTF-8 bytes as <0xNN> tokens when all exist (model.byte_fallback). */
  readonly byteFallback?: boolean;
  /** A word that is a vocab token is that token, merges or not (model.ignore_merges, Llama 3). */
  readonly ignoreMerges?: boolean;
}

const utf8 = new TextEncoder();

export class BpeModel {
  private readonly rank = new Map<number, number>();
  private readonly merged = new Map<number, number>();
  private readonly cache = new Map<string, readonly number[]>();
  /** No token is made by two different merges (true for GPT-NeoX): see merge(). */
  private uniqueResults = true;
  /** id of <0xNN> per byte when byte_fallback is on, else empty. */
  private readonly byteIds: readonly (number | undefined)[];

  /**
   * @param vocab token string -> id, as in `model.vocab`.
   * @param merges `model.merges`: "left right" strings (format 1.0) or [left, right] pairs.
   * @param where names the file for errors.
   */
  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    merges: readonly (string | readonly [string, string])[],
    where: string,
    private readonly options: BpeOptions = {},
  ) {
    this.byteIds = options.byteFallback
      ? Array.from({ length: 256 }, (_, b) =>
          vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
        )
      : [];
    for (const [id] of vocab.entries())
      if (id.length === 0) throw new Error(`${where}: empty token in vocab`);
    const results = new Set<number>();
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
        if (results.has(c)) this.uniqueResults = false;
        results.add(c);
      }
    });
  }

  /**
   * Ids of one pre-token. `key` is the cache key (the raw text of the pre-token); `symbols` its
   * characters as the model sees them (byte-level stand-ins, or the text's own), computed only on
   * a cache miss.
   */
  encodeWord(key: string, symbols: () => readonly string[]): readonly number[] {
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const chars = symbols();
    const whole = this.options.ignoreMerges ? this.vocab.get(chars.join('')) : undefined;
    const ids = whole !== undefined ? [whole] : this.merge(this.initialIds(chars));
    if (key.length < CACHE_MAX_KEY) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(key, ids);
    }
    return ids;
  }

  /** HF's merge_word before merging: vocab ids, byte fallback, then unk (fused or not), else dropped. */
  private initialIds(symbols: readonly string[]): number[] {
    const ids: number[] = [];
    const { unkId, fuseUnk } = this.options;
    let pendingUnk = false;
    for (const s of symbols) {
      const id = this.vocab.get(s);
      if (id !== undefined) {
        if (pendingUnk) ids.push(unkId!);
        pendingUnk = false;
        ids.push(id);
        continue;
      }
      if (this.byteIds.length > 0) {
        const bytes = Array.from(utf8.encode(s), (b) => this.byteIds[b]);
        // HF continues here without touching a pending unk, so it lands after these bytes.
        if (bytes.every((b) => b !== undefined)) {
          for (const b of bytes) ids.push(b!);
          continue;
        }
      }
      if (unkId === undefined) continue;
      if (pendingUnk && !fuseUnk) ids.push(unkId);
      pendingUnk = true;
    }
    if (pendingUnk) ids.push(unkId!);
    return ids;
  }

  /**
   * HF's Word::merge_all: a min-heap of candidate merges ordered by (rank, position); a popped
   * entry is applied if its pair still stands (same merged id), then the pairs it forms with its
   * neighbours are pushed. O(n log n), so a long unbroken run (minified JSON, base64) stays cheap.
   */
  private merge(ids: number[]): number[] {
    const n = ids.length;
    if (n < 2) return ids;
    // Short words: the textbook loop is faster, and gives the same result whenever no token is
    // made by two merges (then a heap entry is stale exactly when its pair is gone).
    if (n <= SHORT_WORD && this.uniqueResults) return this.mergeShort(ids);
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const alive = new Uint8Array(n).fill(1);
    const heap = new MergeHeap();
    const offer = (pos: number, right: number) => {
      const key = ids[pos]! * PAIR + ids[right]!;
      const rank = this.rank.get(key);
      if (rank !== undefined) heap.push(rank, pos, this.merged.get(key)!);
    };
    for (let i = 0; i + 1 < n; i++) offer(i, i + 1);
    while (heap.size > 0) {
      const { pos, newId } = heap.pop();
      const right = next[pos]!;
      if (!alive[pos] || right < 0) continue;
      // A stale entry: the symbols at pos changed since it was pushed.
      if (this.merged.get(ids[pos]! * PAIR + ids[right]!) !== newId) continue;
      ids[pos] = newId;
      alive[right] = 0;
      const after = next[right]!;
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      if (prev[pos]! >= 0) offer(prev[pos]!, pos);
      if (after >= 0) offer(pos, after);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(ids[i]!);
    return out;
  }

  /** Repeatedly merges every occurrence of the lowest-ranked pair, left to right ("a a a" -> "aa a"). */
  private mergeShort(start: number[]): number[] {
    let ids = start;
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

/** A binary min-heap of merges keyed by (rank, position), as the Rust crate's BinaryHeap<Merge>. */
class MergeHeap {
  private keys: number[] = [];
  private newIds: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  push(rank: number, pos: number, newId: number): void {
    // rank * 2^26 + pos orders by rank, then position; exact in a double for words < 64M symbols.
    const k = this.keys;
    const v = this.newIds;
    let i = k.length;
    k.push(rank * 2 ** 26 + pos);
    v.push(newId);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (k[parent]! <= k[i]!) break;
      [k[parent], k[i]] = [k[i]!, k[parent]!];
      [v[parent], v[i]] = [v[i]!, v[parent]!];
      i = parent;
    }
  }

  pop(): { pos: number; newId: number } {
    const k = this.keys;
    const v = this.newIds;
    const top = { pos: k[0]! % 2 ** 26, newId: v[0]! };
    const lastK = k.pop()!;
    const lastV = v.pop()!;
    if (k.length > 0) {
      k[0] = lastK;
      v[0] = lastV;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < k.length && k[l]! < k[m]!) m = l;
        if (r < k.length && k[r]! < k[m]!) m = r;
        if (m === i) break;
        [k[m], k[i]] = [k[i]!, k[m]!];
        [v[m], v[i]] = [v[i]!, v[m]!];
        i = m;
      }
    }
    return top;
  }
}

function splitMerge(m: string, where: string, i: number): [string, string] {
  const sp = m.indexOf(' ', 1);
  if (sp < 0) throw new Error(`${where}: model.merges[${i}] "${m}" is not "left right"`);
  return [m.slice(0, sp), m.slice(sp + 1)];
}

// Added tokens of a tokenizer.json, matched in the text before pre-tokenization and BPE, as HF does:
// leftmost-longest (Aho-Corasick LeftmostLongest in the Rust crate). For GPT-NeoX this is what turns
// a run of 2..24 spaces into one id (50254-50276) and leaves the word after it without its 'Ġ'.

export interface AddedToken {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
  /** true: matched in the normalized text; false: matched in the raw text, before normalization. */
  readonly normalized: boolean;
}

/** A piece of text still to tokenize, or the id of an added token found in the text. */
export type Piece = string | number;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Splits text around a set of added tokens; leftmost match wins, and the longest at that place. */
export class AddedTokenMatcher {
  private readonly pattern: RegExp | undefined;
  private readonly idOf: ReadonlyMap<string, number>;

  constructor(tokens: readonly AddedToken[]) {
    const usable = tokens.filter((t) => t.content.length > 0);
    this.idOf = new Map(usable.map((t) => [t.content, t.id]));
    // A regex alternation takes the first alternative that matches at the leftmost position, so
    // listing longer contents first gives leftmost-longest.
    const alternatives = [...this.idOf.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.pattern = alternatives.length > 0 ? new RegExp(alternatives.join('|'), 'gu') : undefined;
  }

  /** Appends the pieces of `text` to `out`: text between matches (non-empty) and matched ids. */
  split(text: string, out: Piece[]): void {
    if (this.pattern === undefined) {
      if (text.length > 0) out.push(text);
      return;
    }
    let last = 0;
    this.pattern.lastIndex = 0;
    for (let m = this.pattern.exec(text); m !== null; m = this.pattern.exec(text)) {
      if (m.index > last) out.push(text.slice(last, m.index));
      out.push(this.idOf.get(m[0])!);
      last = m.index + m[0].length;
    }
    if (last < text.length) out.push(text.slice(last));
  }
}

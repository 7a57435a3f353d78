// GPT-2 style byte-level pre-tokenization, as Hugging Face `tokenizers`' ByteLevel does it with
// use_regex=true: split text with the GPT-2 regex, then spell each piece's UTF-8 bytes with the
// 256 printable stand-in characters that BPE vocabularies (GPT-2, GPT-NeoX) are written in.

/**
 * Whitespace as Oniguruma's Unicode `\s` (the Rust crate compiles the pattern with Oniguruma).
 * It differs from JavaScript's `\s`: U+0085 (NEL) is whitespace there, U+FEFF (BOM) is not.
 * Checked against HF: " \x85x" splits as [" ", "\x85", "x"], " \ufeffy" as [" \ufeff", "y"].
 */
export const ONIG_WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/**
 * The GPT-2 split pattern: contractions (case-sensitive, as in GPT-2), an optional space then a run
 * of letters, of numbers, or of other non-space symbols; whitespace not followed by non-space; any
 * other whitespace. Every character falls in some alternative, so the matches tile the text.
 */
export const GPT2_SPLIT = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${ONIG_WS}\\p{L}\\p{N}]+|[${ONIG_WS}]+(?![^${ONIG_WS}])|[${ONIG_WS}]+`,
  'gu',
);

/** The 256 byte stand-ins: printable Latin-1 bytes stand for themselves, the rest map to U+0100+n. */
function buildByteChars(): readonly string[] {
  const chars = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : next++);
  }
  return chars;
}

/** byte -> its stand-in character, e.g. 0x20 (space) -> 'Ġ', 0x0a (newline) -> 'Ċ'. */
export const BYTE_CHARS: readonly string[] = buildByteChars();

/** stand-in character -> byte, the inverse of BYTE_CHARS. */
export const CHAR_BYTES: ReadonlyMap<string, number> = new Map(BYTE_CHARS.map((c, b) => [c, b]));

const utf8 = new TextEncoder();

/** The UTF-8 bytes of `piece` as byte-level stand-in characters (one per byte). */
export function toByteLevel(piece: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < piece.length; i++) {
    const code = piece.charCodeAt(i);
    if (code < 0x80) out.push(BYTE_CHARS[code]!);
    else {
      // Rare path: encode the rest of the piece at once (keeps surrogate pairs together).
      for (const b of utf8.encode(piece.slice(i))) out.push(BYTE_CHARS[b]!);
      break;
    }
  }
  return out;
}

/**
 * Byte-level decoding as HF's ByteLevel decoder does it: each token spelled wholly in stand-ins
 * becomes its bytes, any other token (e.g. an added token of plain spaces) its own UTF-8; the byte
 * string is then decoded lossily (each invalid sequence -> U+FFFD, like Rust's from_utf8_lossy).
 */
export function decodeByteLevel(tokens: readonly string[]): string {
  const bytes: number[] = [];
  for (const token of tokens) {
    const mapped: number[] = [];
    let ok = true;
    for (const ch of token) {
      const b = CHAR_BYTES.get(ch);
      if (b === undefined) {
        ok = false;
        break;
      }
      mapped.push(b);
    }
    if (ok) bytes.push(...mapped);
    else bytes.push(...utf8.encode(token));
  }
  // ignoreBOM: a decoded U+FEFF at the start is text, not a byte-order mark (Rust keeps it).
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array(bytes));
}

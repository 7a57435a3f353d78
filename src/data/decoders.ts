// The decoders of tokenizer.json that GPT-NeoX and the Llama families use, as HF `tokenizers` chains
// them: each decoder maps the list of token strings to a new list, and the result is joined.
// Llama 2: Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)]; Llama 3 and GPT-NeoX:
// ByteLevel; some conversions: Metaspace.
import { decodeByteLevel } from './byte-level.ts';
import { asList, asObject, asString, stringPattern, unsupported } from './tokenizer-json.ts';

export type Decoder = (tokens: string[]) => string[];

const TYPES =
  '"ByteLevel", "Replace" (String pattern), "ByteFallback", "Fuse", "Strip", "Metaspace", "Sequence"';

export function parseDecoder(v: unknown, where: string, field = 'decoder'): Decoder {
  // No decoder: HF joins the tokens with spaces.
  if (v === null || v === undefined) return (tokens) => [tokens.join(' ')];
  const d = asObject(v, where, field);
  switch (d.type) {
    case 'ByteLevel':
      return (tokens) => [decodeByteLevel(tokens)];
    case 'Replace': {
      const from = stringPattern(d.pattern, where, `${field}.pattern`);
      const to = asString(d.content, where, `${field}.content`);
      return (tokens) => tokens.map((t) => t.replaceAll(from, to));
    }
    case 'ByteFallback':
      return byteFallback;
    case 'Fuse':
      return (tokens) => [tokens.join('')];
    case 'Strip': {
      const content = asString(d.content, where, `${field}.content`);
      const start = d.start;
      const stop = d.stop;
      if (Array.from(content).length !== 1) unsupported(where, `${field}.content`, content, 'one character');
      if (!Number.isInteger(start) || !Number.isInteger(stop))
        throw new Error(`${where}: ${field}.start and .stop must be integers`);
      return (tokens) => tokens.map((t) => strip(t, content, start as number, stop as number));
    }
    case 'Metaspace': {
      const rep = asString(d.replacement, where, `${field}.replacement`);
      const scheme = d.prepend_scheme ?? (d.add_prefix_space === false ? 'never' : 'always');
      // As HF: in the first token every replacement character is dropped (unless "never").
      return (tokens) => tokens.map((t, i) => t.replaceAll(rep, i === 0 && scheme !== 'never' ? '' : ' '));
    }
    case 'Sequence': {
      const steps = asList(d.decoders, where, `${field}.decoders`).map((x, i) =>
        parseDecoder(x, where, `${field}.decoders[${i}]`),
      );
      return (tokens) => steps.reduce((acc, step) => step(acc), tokens);
    }
    default:
      return unsupported(where, `${field}.type`, d.type, TYPES);
  }
}

/** The byte of a `<0xNN>` token (HF: six bytes, "<0x", two hex digits that u8::from_str_radix takes). */
function byteOf(token: string): number | undefined {
  if (token.length !== 6 || !token.startsWith('<0x') || token[5] !== '>') return undefined;
  const hex = token.slice(3, 5);
  return /^(?:[0-9a-fA-F]{2}|\+[0-9a-fA-F])$/.test(hex) ? Number.parseInt(hex, 16) : undefined;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Runs of <0xNN> tokens become their UTF-8 text; a run that is not valid UTF-8 one U+FFFD per byte. */
function byteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = () => {
    if (bytes.length === 0) return;
    try {
      out.push(strictUtf8.decode(Uint8Array.from(bytes)));
    } catch {
      for (let i = 0; i < bytes.length; i++) out.push('\ufffd');
    }
    bytes = [];
  };
  for (const t of tokens) {
    const b = byteOf(t);
    if (b !== undefined) bytes.push(b);
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
}

/** Removes up to `start` leading and `stop` trailing `content` characters. */
function strip(token: string, content: string, start: number, stop: number): string {
  const chars = Array.from(token);
  let a = 0;
  while (a < start && a < chars.length && chars[a] === content) a++;
  let b = chars.length;
  while (chars.length - b < stop && b > a && chars[b - 1] === content) b--;
  return chars.slice(a, b).join('');
}

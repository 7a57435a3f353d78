// The normalizers of tokenizer.json that GPT-NeoX and Llama files use: NFC (GPT-NeoX), and Llama 2's
// Sequence[Prepend("▁"), Replace(" ", "▁")]. HF applies the normalizer to each piece of text
// between added tokens, so Prepend marks the start of every such piece, not only of the text.
import { asList, asObject, asString, stringPattern, unsupported } from './tokenizer-json.ts';

export type Normalizer = (piece: string) => string;

const TYPES = '"NFC", "Prepend", "Replace" (String pattern), "Sequence" of these, or null';

export function parseNormalizer(v: unknown, where: string, field = 'normalizer'): Normalizer | null {
  if (v === null || v === undefined) return null;
  const n = asObject(v, where, field);
  switch (n.type) {
    case 'NFC':
      return (s) => s.normalize('NFC');
    case 'Prepend': {
      const prefix = asString(n.prepend, where, `${field}.prepend`);
      // As HF: an empty piece stays empty.
      return (s) => (s.length > 0 ? prefix + s : s);
    }
    case 'Replace': {
      const from = stringPattern(n.pattern, where, `${field}.pattern`);
      const to = asString(n.content, where, `${field}.content`);
      if (from.length === 0) unsupported(where, `${field}.pattern`, n.pattern, 'a non-empty string');
      return (s) => s.replaceAll(from, to);
    }
    case 'Sequence': {
      const steps = asList(n.normalizers, where, `${field}.normalizers`)
        .map((x, i) => parseNormalizer(x, where, `${field}.normalizers[${i}]`))
        .filter((x): x is Normalizer => x !== null);
      return (s) => steps.reduce((acc, step) => step(acc), s);
    }
    default:
      return unsupported(where, `${field}.type`, n.type, TYPES);
  }
}

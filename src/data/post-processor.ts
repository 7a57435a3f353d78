// The post-processor of tokenizer.json for a single sequence: the special tokens HF adds around the
// ids when add_special_tokens is true (its default). GPT-NeoX's ByteLevel post-processor adds none;
// Llama 2's TemplateProcessing "<s> $A" adds BOS; Llama 3's Sequence[ByteLevel, TemplateProcessing
// "<|begin_of_text|> $A"] adds <|begin_of_text|>. EOS is never added by these files.
import { asList, asObject, unsupported } from './tokenizer-json.ts';

export interface SpecialAround {
  readonly before: readonly number[];
  readonly after: readonly number[];
}

const TYPES = '"TemplateProcessing", "ByteLevel", "Sequence" of these, or null';

export function parsePostProcessor(v: unknown, where: string, field = 'post_processor'): SpecialAround {
  if (v === null || v === undefined) return { before: [], after: [] };
  const p = asObject(v, where, field);
  switch (p.type) {
    case 'ByteLevel': // only adjusts offsets
      return { before: [], after: [] };
    case 'Sequence': {
      const parts = asList(p.processors, where, `${field}.processors`).map((x, i) =>
        parsePostProcessor(x, where, `${field}.processors[${i}]`),
      );
      if (parts.filter((x) => x.before.length + x.after.length > 0).length > 1)
        unsupported(where, `${field}.processors`, '(two that add tokens)', 'at most one TemplateProcessing');
      return parts.find((x) => x.before.length + x.after.length > 0) ?? { before: [], after: [] };
    }
    case 'TemplateProcessing':
      return parseTemplate(p.single, p.special_tokens, where, field);
    default:
      return unsupported(where, `${field}.type`, p.type, TYPES);
  }
}

/** The single-sequence template: SpecialToken items before and after the one Sequence "A". */
function parseTemplate(single: unknown, specials: unknown, where: string, field: string): SpecialAround {
  const table = asObject(specials, where, `${field}.special_tokens`);
  const before: number[] = [];
  const after: number[] = [];
  let seenA = false;
  asList(single, where, `${field}.single`).forEach((item, i) => {
    const it = asObject(item, where, `${field}.single[${i}]`);
    if (it.Sequence !== undefined) {
      const id = asObject(it.Sequence, where, `${field}.single[${i}].Sequence`).id;
      if (id !== 'A' || seenA) unsupported(where, `${field}.single[${i}].Sequence.id`, id, 'one "A"');
      seenA = true;
    } else if (it.SpecialToken !== undefined) {
      const name = asObject(it.SpecialToken, where, `${field}.single[${i}].SpecialToken`).id;
      const entry = asObject(
        table[name as string],
        where,
        `${field}.special_tokens[${JSON.stringify(name)}]`,
      );
      const ids = asList(entry.ids, where, `${field}.special_tokens[${JSON.stringify(name)}].ids`);
      if (!ids.every((x) => Number.isInteger(x) && (x as number) >= 0))
        throw new Error(`${where}: ${field}.special_tokens[${JSON.stringify(name)}].ids are not token ids`);
      (seenA ? after : before).push(...(ids as number[]));
    } else unsupported(where, `${field}.single[${i}]`, Object.keys(it), '{"Sequence"} or {"SpecialToken"}');
  });
  if (!seenA) unsupported(where, `${field}.single`, '(no $A)', 'a template with $A');
  return { before, after };
}

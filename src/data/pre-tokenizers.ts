// The pre-tokenizers of tokenizer.json that GPT-NeoX and the Llama families use, as HF `tokenizers`
// runs them: ByteLevel (GPT-2 regex or none; it must come last, its byte spelling is applied when
// BPE needs the word), Split with an Oniguruma regex (Llama 3), Metaspace (TinyLlama / Mistral
// conversions) and Sequence. A piece carries its offset so Metaspace's prepend_scheme "first" can
// tell the start of the text from a piece after an added token.
import { GPT2_SPLIT } from './byte-level.ts';
import { compileSplitPattern } from './onig-regex.ts';
import { asList, asObject, asString, type Json, unsupported } from './tokenizer-json.ts';

/** A pre-token and its offset in the piece of text it came from. */
type Span = readonly [text: string, start: number];
type Stage = (spans: readonly Span[], atStart: boolean) => Span[];
type Behavior = 'Isolated' | 'Removed' | 'MergedWithPrevious' | 'MergedWithNext';

const TYPES = '"ByteLevel", "Split", "Metaspace", "Sequence" of these, or null';
const BEHAVIORS: readonly Behavior[] = ['Isolated', 'Removed', 'MergedWithPrevious', 'MergedWithNext'];

export class PreTokenizer {
  private constructor(
    private readonly stages: readonly Stage[],
    /** The words are spelled in the byte-level alphabet before BPE (a ByteLevel pre-tokenizer). */
    readonly byteLevel: boolean,
    /** Only ByteLevel with the GPT-2 regex (GPT-NeoX): the fast path. */
    private readonly gpt2Only: boolean,
  ) {}

  static parse(v: unknown, where: string): PreTokenizer {
    const stages: Stage[] = [];
    let byteLevel = false;
    let gpt2Only = false;
    const add = (x: unknown, field: string) => {
      if (x === null || x === undefined) return;
      const p = asObject(x, where, field);
      if (byteLevel) unsupported(where, field, p.type, 'nothing after a ByteLevel pre-tokenizer');
      switch (p.type) {
        case 'Sequence':
          for (const [i, y] of asList(p.pretokenizers, where, `${field}.pretokenizers`).entries())
            add(y, `${field}.pretokenizers[${i}]`);
          return;
        case 'ByteLevel':
          if (p.add_prefix_space === true) unsupported(where, `${field}.add_prefix_space`, true, 'false');
          byteLevel = true;
          if (p.use_regex !== false) {
            gpt2Only = stages.length === 0;
            stages.push(splitStage(GPT2_SPLIT, 'Isolated'));
          }
          return;
        case 'Split':
          stages.push(parseSplit(p, where, field));
          gpt2Only = false;
          return;
        case 'Metaspace':
          stages.push(parseMetaspace(p, where, field));
          gpt2Only = false;
          return;
        default:
          unsupported(where, `${field}.type`, p.type, TYPES);
      }
    };
    add(v, 'pre_tokenizer');
    return new PreTokenizer(stages, byteLevel, gpt2Only && stages.length === 1);
  }

  /** The pre-tokens of one piece of normalized text; atStart: the piece begins the input text. */
  split(piece: string, atStart: boolean): readonly string[] {
    if (piece.length === 0) return [];
    if (this.gpt2Only) return piece.match(GPT2_SPLIT) ?? [];
    let spans: readonly Span[] = [[piece, 0]];
    for (const stage of this.stages) spans = stage(spans, atStart);
    return spans.map((s) => s[0]);
  }
}

function parseSplit(p: Json, where: string, field: string): Stage {
  if (p.invert === true) unsupported(where, `${field}.invert`, true, 'false');
  const behavior = p.behavior as Behavior;
  if (!BEHAVIORS.includes(behavior))
    unsupported(where, `${field}.behavior`, p.behavior, BEHAVIORS.map((b) => `"${b}"`).join(', '));
  return splitStage(compileSplitPattern(p.pattern, where, `${field}.pattern`), behavior);
}

function parseMetaspace(p: Json, where: string, field: string): Stage {
  const rep = asString(p.replacement, where, `${field}.replacement`);
  if (Array.from(rep).length !== 1) unsupported(where, `${field}.replacement`, rep, 'one character');
  // Files written before tokenizers 0.14 say add_prefix_space instead of prepend_scheme.
  const scheme = p.prepend_scheme ?? (p.add_prefix_space === false ? 'never' : 'always');
  if (scheme !== 'always' && scheme !== 'first' && scheme !== 'never')
    unsupported(where, `${field}.prepend_scheme`, scheme, '"always", "first" or "never"');
  const splitter =
    p.split === false
      ? null
      : splitStage(compileSplitPattern({ String: rep }, where, field), 'MergedWithNext');
  return (spans, atStart) => {
    const out = spans.map(([text, start]): Span => {
      let t = text.replaceAll(' ', rep);
      // HF prepends unless the piece already starts with the replacement; "first" only at offset 0.
      if (!t.startsWith(rep) && (scheme === 'always' || (scheme === 'first' && atStart && start === 0)))
        t = rep + t;
      return [t, start];
    });
    return splitter === null ? out : splitter(out, atStart);
  };
}

/** Splits each span around the matches of `re`, treating the matches as `behavior` says (HF's split). */
function splitStage(re: RegExp, behavior: Behavior): Stage {
  return (spans) => {
    const out: Span[] = [];
    for (const [text, start] of spans) {
      const segs: [number, number, boolean][] = [];
      let prev = 0;
      re.lastIndex = 0;
      for (let m = re.exec(text); m !== null; m = re.exec(text)) {
        const end = m.index + m[0].length;
        if (end === m.index) {
          re.lastIndex++; // an empty match splits nothing
          continue;
        }
        if (m.index > prev) segs.push([prev, m.index, false]);
        segs.push([m.index, end, true]);
        prev = end;
      }
      if (prev < text.length) segs.push([prev, text.length, false]);
      for (const [a, b] of applyBehavior(segs, behavior)) if (b > a) out.push([text.slice(a, b), start + a]);
    }
    return out;
  };
}

/** HF's SplitDelimiterBehavior on (start, end, isMatch) segments. */
function applyBehavior(segs: [number, number, boolean][], behavior: Behavior): [number, number][] {
  switch (behavior) {
    case 'Isolated':
      return segs.map(([a, b]) => [a, b]);
    case 'Removed':
      return segs.filter((s) => !s[2]).map(([a, b]) => [a, b]);
    case 'MergedWithPrevious': {
      // A match joins the piece before it, unless that piece is itself a match.
      const out: [number, number][] = [];
      let prevMatch = false;
      for (const [a, b, m] of segs) {
        if (m && !prevMatch && out.length > 0) out[out.length - 1]![1] = b;
        else out.push([a, b]);
        prevMatch = m;
      }
      return out;
    }
    case 'MergedWithNext': {
      // A match joins the piece after it, unless that piece is itself a match.
      const out: [number, number][] = [];
      let nextMatch = false;
      for (let i = segs.length - 1; i >= 0; i--) {
        const [a, b, m] = segs[i]!;
        if (m && !nextMatch && out.length > 0) out[out.length - 1]![0] = a;
        else out.push([a, b]);
        nextMatch = m;
      }
      return out.reverse();
    }
  }
}

// Split patterns of tokenizer.json are Oniguruma regexes (the Rust crate compiles them with onig).
// This translates the subset real files use (Llama 3, cl100k/o200k-style, Qwen2) into a JavaScript
// RegExp with the same matches, and refuses by name any construct whose meaning differs and that
// it does not translate — a silently different split would give wrong ids on some inputs only.
import { ONIG_WS } from './byte-level.ts';

/** Syntax characters JavaScript lets a `u`-mode pattern escape. */
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/-'.split(''));

/** Escapes whose Oniguruma meaning differs from JavaScript's, or that JavaScript lacks. */
const REFUSED_ESCAPES: Readonly<Record<string, string>> = {
  d: 'Unicode digits in Oniguruma, ASCII in JavaScript; write \\p{Nd} or [0-9]',
  D: 'the complement of \\d (see \\d)',
  w: 'Unicode word characters in Oniguruma, ASCII in JavaScript',
  W: 'the complement of \\w (see \\w)',
  b: 'a Unicode word boundary in Oniguruma, an ASCII one in JavaScript',
  B: 'the complement of \\b (see \\b)',
  h: 'a hex digit in Oniguruma',
  H: 'not a hex digit in Oniguruma',
  A: 'an Oniguruma-only anchor',
  z: 'an Oniguruma-only anchor',
  Z: 'an Oniguruma-only anchor',
  G: 'an Oniguruma-only anchor',
  K: 'Oniguruma-only (keep)',
  R: 'Oniguruma-only (line break)',
  X: 'Oniguruma-only (grapheme cluster)',
};

let casedChars: readonly string[] | undefined;
const foldCache = new Map<string, string>();

/** Every BMP character that Unicode simple case folding relates to `c` ('s' -> "sSſ", 'k' -> "kKK"). */
function caseVariants(c: string): string {
  const hit = foldCache.get(c);
  if (hit !== undefined) return hit;
  casedChars ??= Array.from({ length: 0x10000 }, (_, i) => String.fromCharCode(i)).filter(
    (x) => !(x >= '\ud800' && x <= '\udfff') && (x.toLowerCase() !== x || x.toUpperCase() !== x),
  );
  const re = new RegExp(JS_SYNTAX.has(c) ? `\\${c}` : c, 'iu');
  const all = new Set([c, ...casedChars.filter((x) => re.test(x))]);
  const out = [...all].join('');
  foldCache.set(c, out);
  return out;
}

/**
 * The JavaScript source (for flags 'gu') of an Oniguruma pattern. `where` names the file and field
 * in errors. Handled: literals, classes (not nested), \s \S (Oniguruma's whitespace, see ONIG_WS),
 * \p{..} \P{..}, \r \n \t \f \v \xHH \uHHHH \x{H..}, groups (?: (?= (?! (?<= (?<! and scoped
 * case-insensitivity (?i:...) over literal characters; `.` as Oniguruma's (anything but \n).
 */
export function onigToJs(pattern: string, where: string): string {
  const refuse = (i: number, what: string): never => {
    throw new Error(
      `${where}: the Split regex ${JSON.stringify(pattern)} uses ${what} at character ${i}, which lora-mpt ` +
        'does not translate from Oniguruma to JavaScript',
    );
  };
  const chars = Array.from(pattern);
  let out = '';
  let inClass = false;
  /** One entry per open group: whether it is case-insensitive. */
  const groups: boolean[] = [];
  const ci = () => groups.includes(true);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '\\') {
      const e = chars[++i];
      if (e === undefined) refuse(i, 'a trailing backslash');
      const e1 = e!;
      if (REFUSED_ESCAPES[e1] !== undefined) refuse(i, `\\${e1} (${REFUSED_ESCAPES[e1]})`);
      if (/[0-9]/.test(e1)) refuse(i, `a back-reference \\${e1}`);
      if (e1 === 's') out += inClass ? ONIG_WS : `[${ONIG_WS}]`;
      else if (e1 === 'S') out += inClass ? refuse(i, '\\S inside a character class') : `[^${ONIG_WS}]`;
      else if (e1 === 'p' || e1 === 'P') {
        const end = chars.indexOf('}', i);
        if (chars[i + 1] !== '{' || end < 0) refuse(i, `\\${e1} without {name}`);
        if (ci()) refuse(i, `\\${e1}{..} inside (?i:...)`);
        out += `\\${chars.slice(i, end + 1).join('')}`;
        i = end;
      } else if (e1 === 'x' && chars[i + 1] === '{') {
        const end = chars.indexOf('}', i);
        if (end < 0) refuse(i, '\\x{ without }');
        out += `\\u{${chars.slice(i + 2, end).join('')}}`;
        i = end;
      } else if ('rntfvxu'.includes(e1)) out += `\\${e1}`;
      else if (/[A-Za-z]/.test(e1)) refuse(i, `the escape \\${e1}`);
      else out += literal(e1, inClass, ci());
      continue;
    }
    if (inClass) {
      if (c === '[') refuse(i, 'a nested character class');
      if (c === '&' && chars[i + 1] === '&') refuse(i, 'class intersection &&');
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    switch (c) {
      case '[':
        if (ci()) refuse(i, 'a character class inside (?i:...)');
        if (chars[i + 1] === ']' || (chars[i + 1] === '^' && chars[i + 2] === ']'))
          refuse(i, 'a class starting with ]');
        inClass = true;
        out += c;
        break;
      case '(': {
        const rest = chars.slice(i + 1, i + 5).join('');
        const plain = ['?:', '?=', '?!', '?<=', '?<!'].find((g) => rest.startsWith(g));
        if (rest.startsWith('?i:')) {
          groups.push(true);
          out += '(?:';
          i += 3;
        } else if (plain !== undefined) {
          groups.push(false);
          out += `(${plain}`;
          i += plain.length;
        } else if (rest.startsWith('?')) refuse(i, `the group (${rest}`);
        else {
          groups.push(false);
          out += c;
        }
        break;
      }
      case ')':
        groups.pop();
        out += c;
        break;
      case '.':
        out += '[^\\n]';
        break;
      case '^':
      case '$':
        refuse(i, `the anchor ${c} (a line anchor in Oniguruma, a string anchor in JavaScript)`);
        break;
      case '*':
      case '+':
      case '?':
      case '}':
        if (chars[i + 1] === '+') refuse(i, `a possessive quantifier ${c}+`);
        out += c;
        break;
      case ']':
        out += '\\]'; // a literal outside a class in Oniguruma, an error in JavaScript's u-mode
        break;
      default:
        // Other syntax characters (|, {) mean the same in both; only literals fold case.
        out += JS_SYNTAX.has(c) ? c : literal(c, false, ci() && !/[0-9,]/.test(c));
    }
  }
  if (inClass) refuse(chars.length, 'an unclosed character class');
  return out;
}

function literal(c: string, inClass: boolean, caseless: boolean): string {
  // u-mode allows \- only inside a class.
  const esc = (x: string) => (JS_SYNTAX.has(x) && (x !== '-' || inClass) ? `\\${x}` : x);
  if (inClass || !caseless) return esc(c);
  const variants = caseVariants(c);
  return variants.length === 1 ? esc(c) : `[${Array.from(variants).map(esc).join('')}]`;
}

/** Compiles a Split pattern object ({Regex: ...} or {String: ...}) to a global Unicode RegExp. */
export function compileSplitPattern(pattern: unknown, where: string, field: string): RegExp {
  const p = pattern as { Regex?: unknown; String?: unknown } | null;
  let source: string;
  if (typeof p?.Regex === 'string') source = onigToJs(p.Regex, `${where} ${field}`);
  else if (typeof p?.String === 'string')
    source = Array.from(p.String)
      .map((x) => (JS_SYNTAX.has(x) && x !== '-' ? `\\${x}` : x))
      .join('');
  else
    throw new Error(
      `${where}: ${field} is ${JSON.stringify(pattern)}, not {"Regex": ...} or {"String": ...}`,
    );
  if (source.length === 0) throw new Error(`${where}: ${field} is an empty pattern`);
  try {
    return new RegExp(source, 'gu');
  } catch (err) {
    throw new Error(`${where}: ${field} does not compile as a JavaScript regex (${(err as Error).message})`);
  }
}

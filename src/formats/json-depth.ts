// A guard run before JSON.parse on files from outside: how deeply objects and arrays nest. A
// well-formed header or tokenizer nests a few levels; a hostile file of millions of "[" makes
// JSON.parse build millions of objects (gigabytes) before anything can look at the result.

/**
 * The first place where `text` nests deeper than `limit` objects/arrays, or null. Brackets inside
 * strings do not count. One pass, no allocation; the text need not be valid JSON.
 */
export function excessiveNesting(text: string, limit: number): { depth: number; offset: number } | null {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character (a quote or bracket in it ends nothing).
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > limit) return { depth, offset: i };
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return null;
}

// The base's config.json with its dtype set to what the merged weights are stored in, as
// save_pretrained writes it: transformers 5 writes `dtype`; older configs (MPT-7B's) carry
// `torch_dtype`, which transformers 5 still reads, so when present it is set to the same value.
// Every other byte is kept: the text is edited, not re-serialised, because JSON.parse would lose
// float-ness ("0.0" → 0) that transformers 5's config classes check.
import { isJsonObject } from './config-fields.ts';

interface Member {
  readonly key: string;
  readonly keyStart: number;
  readonly valueStart: number;
  readonly valueEnd: number;
}

function skipString(text: string, at: number): number {
  let i = at + 1;
  while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

function skipWhitespace(text: string, at: number): number {
  let i = at;
  while (/\s/.test(text[i] ?? '')) i++;
  return i;
}

/** End of the JSON value starting at `at` (text already known to be valid JSON). */
function skipValue(text: string, at: number): number {
  let depth = 0;
  let i = at;
  for (;;) {
    const c = text[i];
    if (c === undefined) return i;
    if (c === '"') {
      i = skipString(text, i);
      if (depth === 0) return i;
      continue;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      if (depth === 0) return i;
      depth--;
      if (depth === 0) return i + 1;
    } else if (depth === 0 && (c === ',' || /\s/.test(c))) return i;
    i++;
  }
}

function topLevelMembers(text: string): { members: Member[]; close: number } {
  const members: Member[] = [];
  let i = skipWhitespace(text, 0) + 1; // past '{'
  for (;;) {
    i = skipWhitespace(text, i);
    if (text[i] === '}') return { members, close: i };
    if (text[i] === ',') i = skipWhitespace(text, i + 1);
    const keyStart = i;
    const keyEnd = skipString(text, i);
    const key = JSON.parse(text.slice(keyStart, keyEnd)) as string;
    const valueStart = skipWhitespace(text, skipWhitespace(text, keyEnd) + 1); // past ':'
    const valueEnd = skipValue(text, valueStart);
    members.push({ key, keyStart, valueStart, valueEnd });
    i = valueEnd;
  }
}

function setMember(text: string, key: string, value: string): string {
  const { members, close } = topLevelMembers(text);
  const found = members.find((m) => m.key === key);
  if (found !== undefined) return text.slice(0, found.valueStart) + value + text.slice(found.valueEnd);
  const member = `${JSON.stringify(key)}: ${value}`;
  const first = members[0];
  if (first === undefined) return `${text.slice(0, close)}\n  ${member}\n${text.slice(close)}`;
  // Indent like the first member; keep sorted order (transformers sorts keys) when the file is sorted.
  const lineStart = text.lastIndexOf('\n', first.keyStart) + 1;
  const indent = /^\s*$/.test(text.slice(lineStart, first.keyStart))
    ? text.slice(lineStart, first.keyStart)
    : '  ';
  const sorted = members.every((m, j) => j === 0 || (members[j - 1] as Member).key <= m.key);
  const after = sorted ? members.find((m) => m.key > key) : undefined;
  if (after !== undefined) {
    return `${text.slice(0, after.keyStart)}${member},\n${indent}${text.slice(after.keyStart)}`;
  }
  const last = members[members.length - 1] as Member;
  return `${text.slice(0, last.valueEnd)},\n${indent}${member}${text.slice(last.valueEnd)}`;
}

/** `configText` (a config.json object) with `dtype` = `torchName`, and `torch_dtype` too when present. */
export function configWithDtype(configText: string, torchName: string, source: string): string {
  let json: unknown;
  try {
    json = JSON.parse(configText);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
  if (!isJsonObject(json)) throw new Error(`${source}: not a JSON object`);
  const value = JSON.stringify(torchName);
  let text = setMember(configText, 'dtype', value);
  if (Object.hasOwn(json, 'torch_dtype')) text = setMember(text, 'torch_dtype', value);
  return text;
}

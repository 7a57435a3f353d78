// Reading tokenizer.json fields: every check names the file and the field, and a component or flag
// lora-mpt does not implement is refused by name instead of being approximated.

export interface Json {
  readonly [key: string]: unknown;
}

export function asObject(v: unknown, where: string, field: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error(`${where}: ${field} is missing or not an object`);
  return v as Json;
}

export function asList(v: unknown, where: string, field: string): readonly unknown[] {
  if (!Array.isArray(v)) throw new Error(`${where}: ${field} is missing or not a list`);
  return v;
}

export function asString(v: unknown, where: string, field: string): string {
  if (typeof v !== 'string') throw new Error(`${where}: ${field} is ${JSON.stringify(v)}, not a string`);
  return v;
}

/** A `{"String": s}` pattern (Replace); a `{"Regex": ...}` one is refused. */
export function stringPattern(v: unknown, where: string, field: string): string {
  const p = asObject(v, where, field);
  if (typeof p.String !== 'string')
    unsupported(where, field, v, '{"String": ...} (a Regex pattern here is not implemented)');
  return p.String as string;
}

export function unsupported(where: string, field: string, got: unknown, want: string): never {
  throw new Error(
    `${where}: ${field} is ${JSON.stringify(got)}; lora-mpt's tokenizer supports only ${want} ` +
      '(see docs/data.md, "The tokenizer")',
  );
}

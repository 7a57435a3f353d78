// Typed reads of fields from a parsed JSON config object (config.json, adapter_config.json), each
// failing with an error that names the file and the field and says what was expected.

export type JsonObject = Readonly<Record<string, unknown>>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads fields of one JSON object; `where` is e.g. `models/mpt-7b/config.json` or `… attn_config`. */
export class FieldReader {
  constructor(
    readonly obj: JsonObject,
    readonly where: string,
  ) {}

  fail(field: string, expected: string): never {
    const got = JSON.stringify(this.obj[field]);
    throw new ConfigError(`${this.where}: "${field}" must be ${expected}, got ${got}`);
  }

  has(field: string): boolean {
    return this.obj[field] !== undefined;
  }

  int(field: string, dflt: number, min = 0): number {
    const v = this.obj[field] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(field, `an integer >= ${min}`);
    return v;
  }

  num(field: string, dflt: number): number {
    const v = this.obj[field] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, 'a finite number');
    return v;
  }

  /** A number or null (JSON null and absence both give `dflt`). */
  numOrNull(field: string, dflt: number | null = null): number | null {
    const v = this.obj[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, 'a finite number or null');
    return v;
  }

  probability(field: string, dflt: number): number {
    const v = this.num(field, dflt);
    if (v < 0 || v > 1) this.fail(field, 'a probability in [0, 1]');
    return v;
  }

  bool(field: string, dflt: boolean): boolean {
    const v = this.obj[field] ?? dflt;
    if (typeof v !== 'boolean') this.fail(field, 'true or false');
    return v;
  }

  str(field: string, dflt: string): string {
    const v = this.obj[field] ?? dflt;
    if (typeof v !== 'string') this.fail(field, 'a string');
    return v;
  }

  strOrNull(field: string): string | null {
    const v = this.obj[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') this.fail(field, 'a string or null');
    return v;
  }

  oneOf<T extends string>(field: string, allowed: readonly T[], dflt: T): T {
    const v = this.obj[field] ?? dflt;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.fail(field, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
    }
    return v as T;
  }

  strList(field: string, dflt: readonly string[] | null): readonly string[] | null {
    const v = this.obj[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v === 'string') return [v];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) this.fail(field, 'a list of strings');
    return v as string[];
  }

  /** A nested object (absent or null gives `{}`), read with its own reader. */
  child(field: string): FieldReader {
    const v = this.obj[field];
    if (v === undefined || v === null) return new FieldReader({}, `${this.where} ${field}`);
    if (!isJsonObject(v)) this.fail(field, 'an object');
    return new FieldReader(v, `${this.where} ${field}`);
  }
}

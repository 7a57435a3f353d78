// Reading a JSON request body field by field, once, at the edge: every bad value is a
// BadRequestError naming the field (the server answers 400 with it), and a field nobody reads is an
// error too, as OpenAI's API answers "Unrecognized request argument".

export class BadRequestError extends Error {
  override name = 'BadRequestError';
  constructor(
    /** The request field at fault (OpenAI's `param`), null when the body itself is. */
    readonly param: string | null,
    message: string,
  ) {
    super(message);
  }
}

type Json = Readonly<Record<string, unknown>>;

export class RequestFields {
  private readonly read = new Set<string>();

  constructor(private readonly body: Json) {}

  static of(body: unknown): RequestFields {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BadRequestError(null, 'the request body must be a JSON object');
    }
    return new RequestFields(body as Json);
  }

  /** The raw value (undefined when absent); marks the field as known. */
  raw(name: string): unknown {
    this.read.add(name);
    const v = this.body[name];
    return v === null ? undefined : v;
  }

  string(name: string, fallback?: string): string {
    const v = this.raw(name);
    if (v === undefined) {
      if (fallback === undefined) throw new BadRequestError(name, `${name} is required`);
      return fallback;
    }
    if (typeof v !== 'string') throw new BadRequestError(name, `${name} must be a string`);
    return v;
  }

  number(
    name: string,
    fallback: number,
    min: number,
    max: number,
    what = `a number in [${min}, ${max}]`,
  ): number {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw new BadRequestError(name, `${name} must be ${what}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const v = this.number(name, fallback, min, max, `a whole number in [${min}, ${max}]`);
    if (!Number.isInteger(v)) throw new BadRequestError(name, `${name} must be a whole number, got ${v}`);
    return v;
  }

  boolean(name: string, fallback: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw new BadRequestError(name, `${name} must be true or false`);
    return v;
  }

  /** An OpenAI option lora-mpt does not implement: accepted only at its neutral value(s). */
  neutral(name: string, allowed: readonly unknown[], why: string): void {
    const v = this.raw(name);
    if (v === undefined) return;
    if (!allowed.some((a) => JSON.stringify(a) === JSON.stringify(v))) {
      throw new BadRequestError(name, `${name} ${JSON.stringify(v)} is not supported: ${why}`);
    }
  }

  /** Fails on the first field no reader asked for. */
  done(): void {
    for (const k of Object.keys(this.body)) {
      if (!this.read.has(k)) throw new BadRequestError(k, `unrecognized request field ${k}`);
    }
  }
}

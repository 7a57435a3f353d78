// Command-line flags with the python-fire conventions of the seed's finetune.py / generate.py:
// `--name value`, `--name=value`, a bare `--flag` for true, `--noflag` or `--flag=False` for false,
// and lists written `[Wqkv]`, `[q_proj,v_proj]` or `["q_proj", "v_proj"]`.

export type FlagSpec =
  | { readonly kind: 'string'; readonly help: string; readonly default?: string }
  | { readonly kind: 'int'; readonly help: string; readonly default?: number; readonly min?: number }
  | { readonly kind: 'float'; readonly help: string; readonly default?: number; readonly min?: number }
  | { readonly kind: 'bool'; readonly help: string; readonly default?: boolean }
  | { readonly kind: 'list'; readonly help: string; readonly default?: readonly string[] };

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

type ValueOf<S extends FlagSpec> = S['kind'] extends 'string'
  ? string
  : S['kind'] extends 'int' | 'float'
    ? number
    : S['kind'] extends 'bool'
      ? boolean
      : readonly string[];

/** Flags with a default are always present; the others may be undefined. */
export type ParsedFlags<T extends FlagSpecs> = {
  readonly [K in keyof T]: T[K] extends { readonly default: unknown }
    ? ValueOf<T[K]>
    : ValueOf<T[K]> | undefined;
};

/** A mistake on the command line; the message names the flag and what was wrong. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const TRUE = new Set(['true', 'True', '1', 'yes']);
const FALSE = new Set(['false', 'False', '0', 'no']);

export function parseList(raw: string, flag: string): readonly string[] {
  const text = raw.trim();
  if (!text.startsWith('[')) return text === '' ? [] : text.split(',').map((s) => s.trim());
  if (!text.endsWith(']'))
    throw new UsageError(`--${flag}: "${raw}" opens a list with [ but does not close it`);
  const inner = text.slice(1, -1).trim();
  if (inner === '') return [];
  return inner.split(',').map((item) => {
    const s = item.trim();
    const quoted = /^(['"])(.*)\1$/.exec(s);
    const value = quoted ? quoted[2]! : s;
    if (value === '') throw new UsageError(`--${flag}: "${raw}" has an empty list item`);
    return value;
  });
}

function parseValue(spec: FlagSpec, flag: string, raw: string): unknown {
  switch (spec.kind) {
    case 'string':
      return raw;
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`--${flag}: "${raw}" is not a whole number`);
      const n = Number(raw);
      if (spec.min !== undefined && n < spec.min)
        throw new UsageError(`--${flag}: ${n} is below ${spec.min}`);
      return n;
    }
    case 'float': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n))
        throw new UsageError(`--${flag}: "${raw}" is not a number`);
      if (spec.min !== undefined && n < spec.min)
        throw new UsageError(`--${flag}: ${n} is below ${spec.min}`);
      return n;
    }
    case 'bool':
      if (TRUE.has(raw)) return true;
      if (FALSE.has(raw)) return false;
      throw new UsageError(`--${flag}: "${raw}" is not true or false`);
    case 'list':
      return parseList(raw, flag);
  }
}

/** Parses argv against the specs. Unknown flags and stray positional words are errors. */
export function parseFlags<T extends FlagSpecs>(specs: T, argv: readonly string[]): ParsedFlags<T> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) if (spec.default !== undefined) out[name] = spec.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"; flags start with --`);
    const eq = arg.indexOf('=');
    let name = (eq >= 0 ? arg.slice(2, eq) : arg.slice(2)).replaceAll('-', '_');
    let inline: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let spec = specs[name];
    if (!spec && name.startsWith('no') && specs[name.slice(2)]?.kind === 'bool' && inline === undefined) {
      name = name.slice(2);
      spec = specs[name];
      inline = 'false';
    }
    if (!spec) throw new UsageError(`unknown flag --${name}; see --help for the flags this command takes`);
    if (inline === undefined) {
      const next = argv[i + 1];
      if (spec.kind === 'bool') {
        inline = next !== undefined && (TRUE.has(next) || FALSE.has(next)) ? argv[++i]! : 'true';
      } else {
        if (next === undefined) throw new UsageError(`--${name} needs a value`);
        inline = argv[++i]!;
      }
    }
    out[name] = parseValue(spec, name, inline);
  }
  return out as ParsedFlags<T>;
}

function describeDefault(spec: FlagSpec): string {
  if (spec.default === undefined) return '';
  if (spec.kind === 'list') return ` (default: [${spec.default.join(',')}])`;
  if (spec.kind === 'string' && spec.default === '') return ' (default: empty)';
  return ` (default: ${String(spec.default)})`;
}

/** The --help text: usage line, description, then one entry per flag with its default. */
export function helpText(usage: string, description: string, specs: FlagSpecs): string {
  const lines = [`usage: ${usage}`, '', description, '', 'flags:'];
  for (const [name, spec] of Object.entries(specs)) {
    const type = spec.kind === 'bool' ? '' : ` <${spec.kind}>`;
    lines.push(`  --${name}${type}${describeDefault(spec)}`);
    lines.push(`      ${spec.help}`);
  }
  return lines.join('\n');
}

/**
 * The command line that parses back to `values` under `specs` (only the flags `specs` names): how
 * one command hands its flags to another (`launch` to its coordinator). Unset optional flags are left out.
 */
export function flagArgs(specs: FlagSpecs, values: Readonly<Record<string, unknown>>): string[] {
  const out: string[] = [];
  for (const [name, spec] of Object.entries(specs)) {
    const v = values[name];
    if (v === undefined) continue;
    if (spec.kind === 'bool') out.push(v ? `--${name}` : `--${name}=False`);
    else if (spec.kind === 'list') out.push(`--${name}`, `[${(v as readonly string[]).join(',')}]`);
    else out.push(`--${name}=${String(v)}`);
  }
  return out;
}

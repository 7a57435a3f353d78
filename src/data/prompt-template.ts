// Alpaca prompt templates, with alpaca-lora's Prompter semantics (utils/prompter.py): the built-in
// `alpaca`, `alpaca_legacy`, `alpaca_short` (src/data/templates/*.json, identical text), or any JSON
// file of the same shape named by --prompt_template_name.
import { existsSync, readFileSync } from 'node:fs';

export interface PromptTemplate {
  /** The built-in name or the file it was read from. */
  readonly source: string;
  readonly description: string;
  /** Used when `input` is non-empty; has {instruction} and {input}. */
  readonly promptInput: string;
  /** Used when `input` is empty; has {instruction}. */
  readonly promptNoInput: string;
  /** Marks where the response starts in generated text (used by `generate`). */
  readonly responseSplit: string;
}

export const BUILTIN_TEMPLATES = ['alpaca', 'alpaca_legacy', 'alpaca_short'] as const;

/**
 * Loads a template: '' means `alpaca` (as alpaca-lora); a built-in name; or a path to a JSON file
 * with "prompt_input", "prompt_no_input" and "response_split" strings.
 */
export function loadPromptTemplate(name: string): PromptTemplate {
  const builtin = (BUILTIN_TEMPLATES as readonly string[]).includes(name || 'alpaca');
  const file = builtin ? new URL(`./templates/${name || 'alpaca'}.json`, import.meta.url) : name;
  if (!builtin && !existsSync(name))
    throw new Error(
      `prompt template "${name}": not a built-in (${BUILTIN_TEMPLATES.join(', ')}) and no such file; ` +
        'pass a built-in name or the path of a JSON file with prompt_input, prompt_no_input, response_split',
    );
  const source = builtin ? name || 'alpaca' : name;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`prompt template ${source}: not valid JSON (${(err as Error).message})`);
  }
  return parseTemplate(json, source);
}

export function parseTemplate(json: unknown, source: string): PromptTemplate {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`prompt template ${source}: expected a JSON object`);
  const o = json as Record<string, unknown>;
  const field = (key: string): string => {
    const v = o[key];
    if (typeof v !== 'string')
      throw new Error(`prompt template ${source}: "${key}" is missing or not a string`);
    return v;
  };
  const t: PromptTemplate = {
    source,
    description: typeof o.description === 'string' ? o.description : '',
    promptInput: field('prompt_input'),
    promptNoInput: field('prompt_no_input'),
    responseSplit: field('response_split'),
  };
  // Format once with placeholders so a broken template fails at load, not on row 30,000.
  pythonFormat(t.promptInput, { instruction: '', input: '' }, `${source} prompt_input`);
  pythonFormat(t.promptNoInput, { instruction: '' }, `${source} prompt_no_input`);
  return t;
}

/**
 * The user prompt (no response) or, with `output`, the full training text. As alpaca-lora: the
 * with-input template iff `input` is non-empty; a non-empty output is appended with no separator.
 */
export function formatPrompt(t: PromptTemplate, instruction: string, input: string, output?: string): string {
  const prompt = input
    ? pythonFormat(t.promptInput, { instruction, input }, `${t.source} prompt_input`)
    : pythonFormat(t.promptNoInput, { instruction }, `${t.source} prompt_no_input`);
  return output ? prompt + output : prompt;
}

/** The response in generated text: after the first response_split (case-insensitive), trimmed. */
export function getResponse(t: PromptTemplate, text: string): string {
  const parts = text.split(new RegExp(t.responseSplit, 'i'));
  return parts.length > 1 ? parts[1]!.trim() : '';
}

/**
 * Python's str.format for the subset templates use: {name} fields and {{ / }} escapes. Anything
 * else ({0}, {name!r}, {name:>8}, a lone brace, an unknown name) is an error naming the template.
 */
export function pythonFormat(
  template: string,
  values: Readonly<Record<string, string>>,
  where: string,
): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if (ch === '{' && template[i + 1] === '{') {
      out += '{';
      i++;
    } else if (ch === '}' && template[i + 1] === '}') {
      out += '}';
      i++;
    } else if (ch === '{') {
      const end = template.indexOf('}', i);
      const name = end < 0 ? '' : template.slice(i + 1, end);
      if (!/^[A-Za-z_]\w*$/.test(name))
        throw new Error(`prompt template ${where}: unsupported field "{${name}" at offset ${i}`);
      const v = values[name];
      if (v === undefined) throw new Error(`prompt template ${where}: unknown field {${name}}`);
      out += v;
      i = end;
    } else if (ch === '}') {
      throw new Error(`prompt template ${where}: single "}" at offset ${i} (write "}}" for a brace)`);
    } else out += ch;
  }
  return out;
}

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The model-family seam as the code must keep it (docs/architecture.md): outside a family's folder and
// the registry, no source file names the family. For MPT: no identifier such as MptConfig,
// loadMptModel, MPT_LINEARS or mptConfigJson (the product's own LORA_MPT_* names are not MPT's).
// Comments and strings may say "MPT"; identifiers may not.

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
/** Where MPT may be named: its folder and the one registry line. */
const ALLOWED = [join('families', 'mpt') + sep, join('families', 'registry.ts')];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** The identifiers of TypeScript source with their line numbers; comments and string literals are
 * skipped, template literals' ${…} expressions are read as code. */
export function identifiers(text: string): { name: string; line: number }[] {
  const out: { name: string; line: number }[] = [];
  let line = 1;
  let i = 0;
  const braces: number[] = []; // open braces inside each enclosing template expression
  const skipString = (quote: string) => {
    for (i++; i < text.length && text[i] !== quote; i++) {
      if (text[i] === '\\') i++;
      else if (text[i] === '\n') line++;
    }
    i++;
  };
  const skipTemplate = () => {
    for (i++; i < text.length; i++) {
      const c = text[i];
      if (c === '\\') i++;
      else if (c === '\n') line++;
      else if (c === '`') return void i++;
      else if (c === '$' && text[i + 1] === '{') {
        braces.push(0);
        i += 2;
        return;
      }
    }
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      for (; i < stop; i++) if (text[i] === '\n') line++;
    } else if (c === "'" || c === '"') skipString(c);
    else if (c === '`') skipTemplate();
    else if (c === '{' && braces.length > 0) {
      braces[braces.length - 1]!++;
      i++;
    } else if (c === '}' && braces.length > 0) {
      if (braces[braces.length - 1] === 0) {
        braces.pop();
        i--; // resume the template at this position
        skipTemplate();
      } else {
        braces[braces.length - 1]!--;
        i++;
      }
    } else if (/[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][\w$]*/.exec(text.slice(i, i + 200))!;
      out.push({ name: m[0], line });
      i += m[0].length;
    } else i++;
  }
  return out;
}

/** True for an identifier that names MPT: Mpt anywhere, mpt… camel-cased, or an MPT_ / _MPT part. */
export function namesMpt(id: string): boolean {
  if (id.startsWith('LORA_MPT')) return false;
  return /Mpt/.test(id) || /^mpt($|[A-Z0-9_])/.test(id) || /(^|_)MPT(_|$)/.test(id);
}

/** file:line identifier, for every MPT name in `text`. */
export function mptNames(file: string, text: string): string[] {
  return identifiers(text)
    .filter((t) => namesMpt(t.name))
    .map((t) => `${file}:${t.line} ${t.name}`);
}

/** True for an identifier that names Llama: Llama anywhere, llama… camel-cased, or a LLAMA part. */
export function namesLlama(id: string): boolean {
  return /Llama/.test(id) || /^llama($|[A-Z0-9_])/.test(id) || /(^|_)LLAMA(_|$)/.test(id);
}

describe('the model-family seam', () => {
  it('names Llama only in src/families/llama and the registry', () => {
    const allowed = [join('families', 'llama') + sep, join('families', 'registry.ts')];
    const wrong = sourceFiles(SRC)
      .map((f) => relative(SRC, f))
      .filter((f) => !allowed.some((a) => f.startsWith(a)))
      .flatMap((f) =>
        identifiers(readFileSync(join(SRC, f), 'utf8'))
          .filter((t) => namesLlama(t.name))
          .map((t) => `src/${f}:${t.line} ${t.name}`),
      );
    assert.deepEqual(wrong, [], 'Llama named outside its family folder and the registry');
    assert.ok(namesLlama('LlamaConfig') && namesLlama('LLAMA_LINEARS') && namesLlama('llamaConfigJson'));
    assert.ok(!namesLlama('llamas') && !namesLlama('ALLAMAN'));
  });

  it('names MPT only in src/families/mpt and the registry', () => {
    const wrong = sourceFiles(SRC)
      .map((f) => relative(SRC, f))
      .filter((f) => !ALLOWED.some((a) => f.startsWith(a)))
      .flatMap((f) => mptNames(`src/${f}`, readFileSync(join(SRC, f), 'utf8')));
    assert.deepEqual(wrong, [], 'MPT named outside its family folder and the registry');
  });

  it('finds MPT identifiers by file and line, and not in comments, strings or LORA_MPT_ names', () => {
    const text = [
      "import type { MptConfig } from './x.ts'; // MptModel in a comment",
      "const a = 'loadMptModel in a string', b = process.env.LORA_MPT_TOKEN;",
      '/* MPT_LINEARS in a block',
      '   comment */ const n = MPT_LINEARS.length;',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: TypeScript source under test, not a template
      'const t = `MPT ${mptConfigJson(x)} and ${`${{ k: writeRandomMpt }.k}`} MptConfig`;',
      'let MPT = 1, mpt = 2, mptx = 3, bumpt = 4, isMPT = 5;',
    ].join('\n');
    assert.deepEqual(mptNames('f.ts', text), [
      'f.ts:1 MptConfig',
      'f.ts:4 MPT_LINEARS',
      'f.ts:5 mptConfigJson',
      'f.ts:5 writeRandomMpt',
      'f.ts:6 MPT',
      'f.ts:6 mpt',
    ]);
  });
});

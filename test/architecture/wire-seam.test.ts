import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The wire seam (docs/architecture.md): the generated proto (src/proto) is imported by src/protocol
// and the two gRPC transports only; everyone else names the wire's types through src/protocol, and
// every message either end sends is built there (no `$case:` literal anywhere else).
const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const TRANSPORTS = ['coordinator/grpc-server.ts', 'worker/session.ts'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** Relative module specifiers in `text`: `from '…'` (imports, type imports, re-exports), `import '…'`, `import('…')`. */
function relativeImports(text: string): string[] {
  const re = /\bfrom\s+['"](\.[^'"]*)['"]|\bimport\s*\(?\s*['"](\.[^'"]*)['"]/g;
  return [...text.matchAll(re)].map((m) => (m[1] ?? m[2])!);
}

const inside = (file: string, folder: string) => relative(SRC, file).split(sep)[0] === folder;

/** Files of src (outside src/proto) importing src/proto, as `file imports specifier`. */
function protoImporters(): string[] {
  const out: string[] = [];
  for (const f of sourceFiles(SRC).filter((x) => !inside(x, 'proto'))) {
    for (const s of relativeImports(readFileSync(f, 'utf8'))) {
      if (inside(resolve(dirname(f), s), 'proto'))
        out.push(`${relative(SRC, f).split(sep).join('/')} imports ${s}`);
    }
  }
  return out;
}

const allowed = (line: string) =>
  line.startsWith('protocol/') || TRANSPORTS.some((t) => line.startsWith(`${t} `));

describe('the wire seam', () => {
  it('lets only src/protocol and the two gRPC transports import the generated proto', () => {
    const wrong = protoImporters().filter((line) => !allowed(line));
    assert.deepEqual(wrong, [], 'import what the wire needs from src/protocol/wire.ts instead');
  });

  it('sees the imports it polices (the transports and src/protocol do import src/proto)', () => {
    const importers = new Set(protoImporters().map((line) => line.split(' ')[0]));
    for (const f of [...TRANSPORTS, 'protocol/wire.ts'])
      assert.ok(importers.has(f), `${f} imports src/proto`);
  });

  it('builds every message in src/protocol: no `$case:` literal elsewhere', () => {
    const wrong: string[] = [];
    for (const f of sourceFiles(SRC).filter((x) => !inside(x, 'proto') && !inside(x, 'protocol'))) {
      readFileSync(f, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/\$case\s*:/.test(line)) wrong.push(`${relative(SRC, f)}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(
      wrong,
      [],
      'build the message with a function of src/protocol (messages.ts, from-worker.ts)',
    );
  });
});

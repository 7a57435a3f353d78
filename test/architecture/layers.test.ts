import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The architecture as the code must keep it (DESIGN.md §1, docs/architecture.md): the folders of
// src/ in layer order, lowest first. A file may import from its own folder or from a folder below
// its own, never above. This list is the one place the order is written.
export const LAYERS = [
  'proto', // generated gRPC/protobuf code
  'formats', // tensor file formats: safetensors, PyTorch zip + pickle, dtypes, weight index
  'events', // structured events (JSON lines / readable text)
  'metrics', // Prometheus registries and the /metrics server
  'collective', // gradient all-reduce (NATS, in-process); knows nothing of MPT
  'hub', // Hugging Face cache and downloads
  'data', // datasets, prompt templates, tokenizer, data plan, micro-batches
  'checkpoint', // MPT config, checkpoints, LoRA targets, PEFT adapter files
  'model', // MPT + LoRA math in TensorFlow.js
  'generate', // decoding: KV-cached greedy, beam search and sampling; the generation engine
  'serve', // the HTTP server of `generate`: web page, OpenAI-compatible API, fair queue
  'train', // replica, AdamW, schedules, training checkpoints
  'protocol', // the coordinator <-> worker wire contract
  'coordinator', // the step driver, dealer, ledger, gRPC server
  'worker', // a replica worker: compute, all-reduce, session
  'cli', // commands
] as const;

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** Every module specifier a file imports: static, side-effect, re-export and literal dynamic imports. */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^'"]*?\sfrom\s+['"]([^'"]+)['"]/gm,
    /^\s*import\s+['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]!);
  return out;
}

/**
 * The specifiers that load something at run time: `import type` and `export type ... from`
 * statements are erased by every TypeScript compiler (tsc, tsx/esbuild, Node's type stripping),
 * whatever verbatimModuleSyntax says, so they are dropped. An inline `import { type X }` is kept:
 * under verbatimModuleSyntax it compiles to `import {} from`, which still loads the module.
 */
export function runtimeSpecifiers(text: string): string[] {
  return specifiers(text.replace(/^\s*(?:import|export)\s+type\s[^'";]*?\sfrom\s+['"][^'"]+['"];?/gm, ''));
}

const folderOf = (file: string) => relative(SRC, file).split(sep)[0]!;
const rank = (folder: string) => LAYERS.indexOf(folder as (typeof LAYERS)[number]);

/** Files reachable from `entry` through relative imports that load at run time, and the package
 * specifiers they import. */
function reach(entry: string): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const todo = [entry];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const s of runtimeSpecifiers(readFileSync(f, 'utf8'))) {
      if (s.startsWith('.')) todo.push(resolve(dirname(f), s));
      else if (!packages.has(s)) packages.set(s, relative(SRC, f));
    }
  }
  return { files, packages };
}

describe('architecture', () => {
  const files = sourceFiles(SRC);

  it('names every folder of src/ in the layer order', () => {
    const folders = new Set(files.map(folderOf));
    for (const f of folders) assert.ok(rank(f) >= 0, `src/${f} is in no layer: add it to LAYERS`);
  });

  it('has no import from a lower layer to a higher one', () => {
    const wrong: string[] = [];
    for (const f of files) {
      const from = folderOf(f);
      for (const s of specifiers(readFileSync(f, 'utf8')).filter((x) => x.startsWith('.'))) {
        const to = folderOf(resolve(dirname(f), s));
        if (to !== from && rank(to) > rank(from))
          wrong.push(`${relative(SRC, f)} imports ${s} (${from} -> ${to})`);
      }
    }
    assert.deepEqual(wrong, [], 'imports against the layer order');
  });

  it('keeps TensorFlow.js out of everything the coordinator command reaches', () => {
    const { files: reached, packages } = reach(join(SRC, 'cli', 'coordinator.ts'));
    const tf = [...packages].filter(([p]) => p.startsWith('@tensorflow/')).map(([p, f]) => `${f}: ${p}`);
    assert.deepEqual(tf, [], 'TensorFlow.js imports reachable from src/cli/coordinator.ts');
    const model = [...reached].filter((f) => folderOf(f) === 'model').map((f) => relative(SRC, f));
    assert.deepEqual(model, [], 'src/model files reachable from src/cli/coordinator.ts');
    assert.ok(reached.size > 30, `the walk reached ${reached.size} files: it follows imports`);
    // The LoRA variants' tensors and initialisation are the coordinator's too: the check covers them.
    assert.ok(
      reached.has(join(SRC, 'checkpoint', 'lora-variants', 'dora.ts')),
      'the walk reaches the DoRA variant',
    );
  });

  it('drops only the import statements the TypeScript compiler erases', () => {
    const tfjs = '@tensorflow/tfjs-core';
    assert.deepEqual(runtimeSpecifiers(`import type * as tf from '${tfjs}';`), []);
    assert.deepEqual(
      runtimeSpecifiers("import type {\n  A,\n  B,\n} from './a.ts';\nexport type { C } from './c.ts';"),
      [],
    );
    assert.deepEqual(runtimeSpecifiers(`import * as tf from '${tfjs}';`), [tfjs]);
    assert.deepEqual(runtimeSpecifiers(`import { type Tensor, tidy } from '${tfjs}';`), [tfjs]);
    assert.deepEqual(runtimeSpecifiers(`import { type Tensor } from '${tfjs}';`), [tfjs]);
    assert.deepEqual(runtimeSpecifiers(`export * from '${tfjs}';`), [tfjs]);
    assert.deepEqual(runtimeSpecifiers("import type { A } from './a.ts';\nimport { b } from './b.ts';"), [
      './b.ts',
    ]);
    assert.deepEqual(runtimeSpecifiers("export type X = Y;\nimport { z } from './z.ts';"), ['./z.ts']);
    assert.deepEqual(runtimeSpecifiers(`const tf = await import('${tfjs}');`), [tfjs]);
  });

  it('would see TensorFlow.js where it is used (the walk is not blind)', () => {
    const { packages } = reach(join(SRC, 'cli', 'finetune.ts'));
    assert.ok(packages.has('@tensorflow/tfjs-core'), 'finetune loads the model, so it reaches tfjs-core');
  });
});

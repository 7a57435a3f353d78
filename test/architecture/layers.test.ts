import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
type Folder = (typeof LAYERS)[number];

// Folders the order alone would let one import the other, which must not know each other at all:
// each pair is refused both ways. Inference (generate, serve) and training (train, protocol,
// coordinator, worker) share only the layers below them; the two ends of the wire meet only in
// src/protocol.
export const STRANGERS: readonly (readonly [Folder, Folder])[] = [
  ['coordinator', 'worker'],
  ['generate', 'train'],
  ['generate', 'protocol'],
  ['generate', 'coordinator'],
  ['generate', 'worker'],
  ['serve', 'train'],
  ['serve', 'protocol'],
  ['serve', 'coordinator'],
  ['serve', 'worker'],
];

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

const folderUnder = (root: string, file: string) => relative(root, file).split(sep)[0]!;
const folderOf = (file: string) => folderUnder(SRC, file);
const rank = (folder: string) => LAYERS.indexOf(folder as (typeof LAYERS)[number]);
const strangers = (a: string, b: string) =>
  STRANGERS.some(([x, y]) => (x === a && y === b) || (x === b && y === a));

/** Imports from one folder of `root` into another, between folders that must not know each other. */
function strangerImports(root: string): string[] {
  const wrong: string[] = [];
  for (const f of sourceFiles(root)) {
    const from = folderUnder(root, f);
    for (const s of specifiers(readFileSync(f, 'utf8')).filter((x) => x.startsWith('.'))) {
      const to = folderUnder(root, resolve(dirname(f), s));
      if (strangers(from, to)) wrong.push(`${relative(root, f)} imports ${s} (${from} -> ${to})`);
    }
  }
  return wrong;
}

/** Files reachable from `entry` through relative imports, and the package specifiers they import. */
function reach(entry: string): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const todo = [entry];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const s of specifiers(readFileSync(f, 'utf8'))) {
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

  it('has no import between folders that must not know each other', () => {
    assert.deepEqual(strangerImports(SRC), [], 'imports between strangers (STRANGERS)');
  });

  it('would see an import between strangers of each kind, either way (a scratch tree)', () => {
    const root = mkdtempSync(join(tmpdir(), 'lora-mpt-layers-'));
    try {
      const expected: string[] = [];
      for (const [a, b] of STRANGERS) {
        for (const [from, to] of [
          [a, b],
          [b, a],
        ] as const) {
          mkdirSync(join(root, from), { recursive: true });
          writeFileSync(join(root, from, `uses-${to}.ts`), `import { x } from '../${to}/x.ts';\n`);
          expected.push(`${join(from, `uses-${to}.ts`)} imports ../${to}/x.ts (${from} -> ${to})`);
        }
      }
      // Neighbours that may know each other stay allowed: worker and serve both import data.
      mkdirSync(join(root, 'data'));
      writeFileSync(join(root, 'worker', 'uses-data.ts'), `import { x } from '../data/x.ts';\n`);
      writeFileSync(join(root, 'serve', 'uses-data.ts'), `import { x } from '../data/x.ts';\n`);
      assert.deepEqual(strangerImports(root).sort(), expected.sort());
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('keeps TensorFlow.js out of everything the coordinator command reaches', () => {
    const { files: reached, packages } = reach(join(SRC, 'cli', 'coordinator.ts'));
    const tf = [...packages].filter(([p]) => p.startsWith('@tensorflow/')).map(([p, f]) => `${f}: ${p}`);
    assert.deepEqual(tf, [], 'TensorFlow.js imports reachable from src/cli/coordinator.ts');
    const model = [...reached].filter((f) => folderOf(f) === 'model').map((f) => relative(SRC, f));
    assert.deepEqual(model, [], 'src/model files reachable from src/cli/coordinator.ts');
    assert.ok(reached.size > 30, `the walk reached ${reached.size} files: it follows imports`);
  });

  it('would see TensorFlow.js where it is used (the walk is not blind)', () => {
    const { packages } = reach(join(SRC, 'cli', 'finetune.ts'));
    assert.ok(packages.has('@tensorflow/tfjs-core'), 'finetune loads the model, so it reaches tfjs-core');
  });
});

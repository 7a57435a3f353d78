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
  'collective', // gradient all-reduce (NATS, in-process); knows nothing of a model
  'hub', // Hugging Face cache and downloads
  'data', // datasets, prompt templates, tokenizer, data plan, micro-batches
  'checkpoint', // the generic model config, checkpoints, LoRA targets, PEFT adapter files
  'model', // LoRA math, kernels and the generic forward/backward in TensorFlow.js (no family named)
  'families', // model families (MPT) by config.json's model_type: pure spec + lazily loaded compute
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

/** How a file imports each module specifier: `static` (import/export ... from, side-effect) loads
 * with the file; `types` (`import type` / `export type`) loads nothing at run time; `lazy` is a
 * literal dynamic import(), loaded when that line runs. */
export interface Imports {
  readonly static: string[];
  readonly types: string[];
  readonly lazy: string[];
}

export function importsOf(text: string): Imports {
  const out: Imports = { static: [], types: [], lazy: [] };
  for (const m of text.matchAll(/^\s*(?:import|export)\s([^'"]*?)\sfrom\s+['"]([^'"]+)['"]/gm)) {
    (/^type\s/.test(m[1]!) ? out.types : out.static).push(m[2]!);
  }
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.static.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.lazy.push(m[1]!);
  return out;
}

/** Every module specifier a file imports, of any kind (the layer order holds for all of them). */
export function specifiers(text: string): string[] {
  const i = importsOf(text);
  return [...i.static, ...i.types, ...i.lazy];
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

type Read = (file: string) => string;
const readSource: Read = (f) => readFileSync(f, 'utf8');

/** What a process started at `entry` loads: the files reachable through static imports (type-only
 * imports load nothing), the packages they import, and the lazy imports they hold. */
export function reach(
  entry: string,
  read: Read = readSource,
): { files: Set<string>; packages: Map<string, string>; lazy: { from: string; to: string }[] } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const lazy: { from: string; to: string }[] = [];
  const todo = [entry];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    const i = importsOf(read(f));
    for (const s of i.static) {
      if (s.startsWith('.')) todo.push(resolve(dirname(f), s));
      else if (!packages.has(s)) packages.set(s, relative(SRC, f));
    }
    for (const s of i.lazy) lazy.push({ from: f, to: s.startsWith('.') ? resolve(dirname(f), s) : s });
  }
  return { files, packages, lazy };
}

/** Why the process started at `entry` could load TensorFlow.js or src/model, one line each (empty:
 * it cannot). A lazy import is allowed only as a family's compute loader (src/families/<name>/spec.ts
 * importing its ./compute.ts), and no reached file may call a family's loadCompute(). */
export function tensorflowReach(entry: string, read: Read = readSource): string[] {
  const { files, packages, lazy } = reach(entry, read);
  const out: string[] = [];
  for (const [p, f] of packages) if (p.startsWith('@tensorflow/')) out.push(`${f} imports ${p}`);
  for (const f of files) if (folderOf(f) === 'model') out.push(`${relative(SRC, f)} (src/model) is loaded`);
  for (const { from, to } of lazy) {
    const spec = relative(SRC, from).split(sep);
    const loader = spec.length === 3 && spec[0] === 'families' && spec[2] === 'spec.ts';
    if (!loader || to !== join(dirname(from), 'compute.ts')) {
      out.push(
        `${relative(SRC, from)} lazily imports ${relative(SRC, to)}: only a family's spec.ts may, of its compute.ts`,
      );
    }
  }
  for (const f of files) {
    read(f)
      .split('\n')
      .forEach((line, n) => {
        if (/\.loadCompute\s*\(/.test(line)) out.push(`${relative(SRC, f)}:${n + 1} calls loadCompute()`);
      });
  }
  return out;
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

  it('keeps TensorFlow.js out of everything the coordinator command loads', () => {
    const entry = join(SRC, 'cli', 'coordinator.ts');
    assert.deepEqual(tensorflowReach(entry), [], 'what could load TensorFlow.js in src/cli/coordinator.ts');
    const { files, lazy } = reach(entry);
    assert.ok(files.size > 30, `the walk reached ${files.size} files: it follows imports`);
    // The LoRA variants' tensors and initialisation are the coordinator's too (their device math
    // takes TensorFlow.js as a type only): the check covers them.
    const dora = join(SRC, 'checkpoint', 'lora-variants', 'dora.ts');
    assert.ok(files.has(dora), 'the walk reaches the DoRA variant');
    assert.ok(
      lazy.length > 0,
      'the coordinator reads configs through the family registry, whose compute is lazy',
    );
  });

  it('would see a lazy import other than a family loader, a loadCompute() call, or a type import made static', () => {
    const src = (p: string) => join(SRC, p);
    const files: Record<string, string> = {
      [src('cli/x.ts')]:
        "import { a } from '../families/registry.ts';\nimport type { T } from '../model/t.ts';\n",
      [src('families/registry.ts')]:
        "import { SPEC } from './mpt/spec.ts';\nexport const a = () => SPEC.loadCompute();\n",
      [src('families/mpt/spec.ts')]:
        "export const SPEC = { loadCompute: () => import('./compute.ts') };\nconst m = () => import('../../model/forward.ts');\n",
    };
    const read = (f: string) => files[f] ?? '';
    assert.deepEqual(tensorflowReach(src('cli/x.ts'), read), [
      "families/mpt/spec.ts lazily imports model/forward.ts: only a family's spec.ts may, of its compute.ts",
      'families/registry.ts:2 calls loadCompute()',
    ]);
    files[src('cli/x.ts')] = "import { T } from '../model/t.ts';\n";
    assert.deepEqual(tensorflowReach(src('cli/x.ts'), read), ['model/t.ts (src/model) is loaded']);
  });

  it('keeps TensorFlow.js out of the synthetic backend, which computes no model', () => {
    const { files, packages } = reach(join(SRC, 'worker', 'synthetic-compute.ts'));
    const tf = [...packages]
      .filter(([p]) => p.startsWith('@tensorflow/'))
      .map(([p, f]) => `${f} imports ${p}`);
    assert.deepEqual(tf, [], 'what could load TensorFlow.js in src/worker/synthetic-compute.ts');
    // It counts FLOPs as real workers do (src/model/flops.ts, pure), so the walk passes src/model.
    assert.ok(files.has(join(SRC, 'model', 'flops.ts')), 'the walk reaches the FLOP count');
  });

  it('would see TensorFlow.js where it is used (the walk is not blind)', () => {
    const { packages } = reach(join(SRC, 'cli', 'finetune.ts'));
    assert.ok(packages.has('@tensorflow/tfjs-core'), 'finetune loads the model, so it reaches tfjs-core');
  });
});

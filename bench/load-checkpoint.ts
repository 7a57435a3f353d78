// How fast and in how much memory a checkpoint loads: writes a synthetic ~420 MB (float32) MPT-shaped
// checkpoint as sharded safetensors and .bin, f32 and bf16, then loads each in its own child process
// (so peaks don't mix) into a preallocated float32 store and reports MB/s and peak RSS vs model size.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WeightFormat } from '../src/checkpoint/checkpoint.ts';
import { openCheckpoint } from '../src/families/checkpoint.ts';
import { elementCount } from '../src/formats/host-tensor.ts';
import { mptTensors, type StoredDtype, writeSyntheticCheckpoint } from './support/synthetic-checkpoint.ts';

const D_MODEL = 1024;
const LAYERS = 7;
const VOCAB = 16384;
const SHARDS = 2;
const MB = 2 ** 20;

interface ChildResult {
  readonly modelF32Bytes: number;
  readonly seconds: number;
  readonly rssBefore: number;
  readonly maxRss: number;
  readonly rssAfter: number;
  readonly largestTensorBytes: number;
}

/** In the child: load every tensor into a store allocated up front, as a worker does. */
async function loadOnce(dir: string, format: WeightFormat): Promise<ChildResult> {
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const ck = await openCheckpoint(dir, { format });
  const store = new Map(ck.tensorInfo.map((t) => [t.name, new Float32Array(elementCount(t.shape))]));
  for await (const t of ck.tensors()) store.get(t.name)!.set(t.data);
  const seconds = (performance.now() - t0) / 1000;
  const sizes = [...store.values()].map((a) => a.byteLength);
  return {
    modelF32Bytes: sizes.reduce((a, b) => a + b, 0),
    seconds,
    rssBefore,
    maxRss: process.resourceUsage().maxRSS * 1024,
    rssAfter: process.memoryUsage().rss,
    largestTensorBytes: Math.max(...sizes),
  };
}

export async function run(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'lora-mpt-load-bench-'));
  const tensors = mptTensors(D_MODEL, LAYERS, VOCAB);
  const config = {
    model_type: 'mpt',
    d_model: D_MODEL,
    n_heads: 16,
    n_layers: LAYERS,
    vocab_size: VOCAB,
    max_seq_len: 2048,
  };
  const variants: [WeightFormat, StoredDtype][] = [
    ['safetensors', 'F32'],
    ['safetensors', 'BF16'],
    ['bin', 'F32'],
    ['bin', 'BF16'],
  ];
  console.log(`synthetic MPT: d_model ${D_MODEL}, ${LAYERS} layers, vocab ${VOCAB}, ${SHARDS} shards each`);
  console.log(
    'variant            | on disk MB | f32 MB | load s | MB/s (disk) | peak RSS MB | RSS before | peak - before | (peak-before)/f32',
  );
  try {
    for (const [format, dt] of variants) {
      const dir = join(root, `${format}-${dt}`);
      mkdirSync(dir);
      const diskBytes = await writeSyntheticCheckpoint(dir, config, tensors, format, dt, SHARDS);
      const child = spawnSync(
        process.execPath,
        ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', dir, format],
        {
          encoding: 'utf8',
          maxBuffer: 1 << 20,
        },
      );
      if (child.status !== 0) throw new Error(`child for ${format} ${dt} failed:\n${child.stderr}`);
      const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as ChildResult;
      const grown = r.maxRss - r.rssBefore;
      console.log(
        [
          `${format} ${dt}`.padEnd(18),
          (diskBytes / MB).toFixed(0).padStart(10),
          (r.modelF32Bytes / MB).toFixed(0).padStart(6),
          r.seconds.toFixed(2).padStart(6),
          (diskBytes / MB / r.seconds).toFixed(0).padStart(11),
          (r.maxRss / MB).toFixed(0).padStart(11),
          (r.rssBefore / MB).toFixed(0).padStart(10),
          (grown / MB).toFixed(0).padStart(13),
          (grown / r.modelF32Bytes).toFixed(3).padStart(17),
        ].join(' | '),
      );
      rmSync(dir, { recursive: true, force: true });
    }
    console.log(
      '(files were just written, so reads come from the page cache: MB/s is decode speed, not disk speed)',
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child' && process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await loadOnce(process.argv[3]!, process.argv[4] as WeightFormat);
  console.log(JSON.stringify(result));
}

// Generation speed: decoding 128 new tokens after a 64-token prompt by a mid-size MPT (d_model 512,
// 8 heads, 4 layers, GPT-NeoX vocabulary 50432) with a LoRA adapter (r=8 on Wqkv), greedy and with
// generate.py's default of 4 beams, on
// the tensorflow and wasm backends, with the KV cache (each new token costs one position) and without
// it (every step re-runs the whole sequence); and transformers' `generate` on the same checkpoint,
// adapter and thread count (tools/reference/bench_generate.py) when /opt/refpy exists. Prints figures;
// never passes or fails on time.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { initLoraWeights } from '../src/checkpoint/lora-init.ts';
import { loraTargets } from '../src/checkpoint/lora-targets.ts';
import { newLoraConfig, readPeftAdapter, writePeftAdapter } from '../src/checkpoint/peft-adapter.ts';
import { Rng } from '../src/data/rng.ts';
import { openCheckpoint } from '../src/families/checkpoint.ts';
import { loadModelWithAdapter } from '../src/families/load-model.ts';
import { writeRandomMpt } from '../src/families/mpt/random-checkpoint.ts';
import { decode, TRANSFORMERS_DEFAULTS } from '../src/generate/decode.ts';
import { cachedLogits, type LogitsSource, uncachedLogits } from '../src/generate/logits-source.ts';
import { initBackend } from '../src/model/backend.ts';
import type { CausalLm } from '../src/model/causal-lm.ts';

const SPEC = { dModel: 512, nHeads: 8, nLayers: 4, vocabSize: 50432, maxSeqLen: 512, seed: 1, initStd: 0.05 };
const PROMPT = 64;
const NEW = 128;
const CACHED_RUNS = 3;
const PYTHON = '/opt/refpy/bin/python';
const PEER = fileURLToPath(new URL('../tools/reference/bench_generate.py', import.meta.url));

interface Timing {
  readonly ms: number;
  /** Time from the start to the first new token (the prompt's forward). */
  readonly firstMs: number;
  readonly ids: readonly number[];
}

async function timeDecode(
  model: CausalLm,
  prompt: Int32Array,
  make: (m: CausalLm) => LogitsSource,
  numBeams: number,
): Promise<Timing> {
  const source = make(model);
  const t0 = performance.now();
  let first = 0;
  const out = await decode(
    source,
    prompt,
    {
      maxNewTokens: NEW,
      numBeams,
      doSample: false,
      temperature: 1,
      topK: 0,
      topP: 1,
      seed: null,
      eosTokenId: null,
      ...TRANSFORMERS_DEFAULTS,
    },
    {
      onStep: (t) => {
        if (t.length === 1) first = performance.now() - t0;
      },
    },
  );
  const ms = performance.now() - t0;
  source.dispose();
  return { ms, firstMs: first, ids: out.tokens };
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const rate = (ms: number) => (NEW / (ms / 1000)).toFixed(1);

/** transformers' generate on the same files: {cache: true/false → ms (median), ids}. */
async function peer(model: string, adapter: string, prompt: Int32Array, threads: number, beams: number) {
  const child: ChildProcess = spawn(
    PYTHON,
    [
      PEER,
      '--model',
      model,
      '--adapter',
      adapter,
      '--prompt',
      [...prompt].join(','),
      '--new',
      String(NEW),
      '--threads',
      String(threads),
      '--beams',
      String(beams),
      '--runs',
      String(CACHED_RUNS),
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const runs: { cache: boolean; ms: number; ids: number[] }[] = [];
  for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    if (line.startsWith('{')) runs.push(JSON.parse(line) as { cache: boolean; ms: number; ids: number[] });
  }
  const cached = runs.filter((r) => r.cache);
  const plain = runs.filter((r) => !r.cache);
  if (cached.length === 0 || plain.length === 0) throw new Error('bench_generate.py gave no result');
  return {
    cachedMs: median(cached.map((r) => r.ms)),
    uncachedMs: median(plain.map((r) => r.ms)),
    ids: cached[0]?.ids ?? [],
  };
}

function sameTokens(a: readonly number[], b: readonly number[]): string {
  const k = a.findIndex((t, i) => t !== b[i]);
  return k < 0 && a.length === b.length ? 'yes' : `no (first difference at new token ${k})`;
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-bench-generate-'));
  try {
    const modelDir = join(dir, 'model');
    const adapterDir = join(dir, 'adapter');
    await writeRandomMpt(modelDir, SPEC);
    const ckpt0 = await openCheckpoint(modelDir);
    const lora = { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['Wqkv'] };
    const targets = loraTargets(ckpt0.config, lora);
    const weights = initLoraWeights(targets, lora, 7);
    const rng = new Rng(3);
    for (const t of targets) {
      const b = weights.get(t.bName) as Float32Array;
      for (let i = 0; i < b.length; i++) b[i] = (rng.nextU32() / 2 ** 32 - 0.5) * 0.02;
    }
    await writePeftAdapter(adapterDir, {
      config: newLoraConfig(lora, modelDir),
      tensors: new Map(
        targets
          .flatMap((t) => [t.aName, t.bName])
          .map((n) => {
            const data = weights.get(n) as Float32Array;
            const t = targets.find((x) => x.aName === n || x.bName === n);
            const shape = n === t?.aName ? [8, t.inFeatures] : [t?.outFeatures ?? 0, 8];
            return [n, { name: n, shape, data }];
          }),
      ),
    });
    const prompt = Int32Array.from({ length: PROMPT }, () => 1 + rng.below(SPEC.vocabSize - 1));
    const adapter = await readPeftAdapter(adapterDir);
    console.log(
      `MPT d_model ${SPEC.dModel}, ${SPEC.nHeads} heads, ${SPEC.nLayers} layers, vocab ${SPEC.vocabSize}; LoRA r=8 on Wqkv; prompt ${PROMPT} tokens, ${NEW} new tokens (no EOS); load average ${loadavg()[0]?.toFixed(1)}`,
    );
    const python = existsSync(PYTHON);
    if (!python)
      console.log(
        `(${PYTHON} is absent: no transformers comparison; tools/reference/README.md says how to make it)`,
      );
    console.log(
      'backend | threads | decoding | cached tok/s (first token ms) | uncached tok/s | cache speed-up | transformers cached / uncached tok/s | ours/transformers (cached) | same tokens',
    );
    for (const name of ['tensorflow', 'wasm'] as const) {
      let backend: Awaited<ReturnType<typeof initBackend>>;
      try {
        backend = await initBackend(name);
      } catch (err) {
        console.log(`${name} | - | not available here: ${(err as Error).message.split('\n')[0]}`);
        continue;
      }
      const threads =
        name === 'tensorflow' ? Number(process.env.TF_NUM_INTRAOP_THREADS ?? availableParallelism()) : 1;
      const ckpt = await openCheckpoint(modelDir);
      const model = await loadModelWithAdapter(ckpt.config, ckpt.tensors(), adapter, adapterDir, {
        layout: backend.layout,
      });
      await timeDecode(model, prompt, cachedLogits, 1); // warm-up
      for (const beams of [1, 4]) {
        const cached: Timing[] = [];
        for (let i = 0; i < CACHED_RUNS; i++)
          cached.push(await timeDecode(model, prompt, cachedLogits, beams));
        const best = cached.sort((a, b) => a.ms - b.ms)[Math.floor(CACHED_RUNS / 2)] as Timing;
        const uncached = await timeDecode(model, prompt, uncachedLogits, beams);
        let theirs = '(no /opt/refpy)';
        let ratio = '-';
        let same = sameTokens(best.ids, uncached.ids) === 'yes' ? 'cache = no cache' : 'cache ≠ no cache!';
        if (python) {
          const p = await peer(modelDir, adapterDir, prompt, threads, beams);
          theirs = `${rate(p.cachedMs)} / ${rate(p.uncachedMs)}`;
          ratio = (p.cachedMs / best.ms).toFixed(2);
          same += `; vs transformers: ${sameTokens(best.ids, p.ids)}`;
        }
        const decoding = beams === 1 ? 'greedy' : `${beams} beams`;
        console.log(
          `${name} | ${threads} | ${decoding} | ${rate(best.ms)} (${best.firstMs.toFixed(0)}) | ${rate(uncached.ms)} | ${(uncached.ms / best.ms).toFixed(1)}x | ${theirs} | ${ratio} | ${same}`,
        );
      }
      model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Tokenizing Alpaca: all 52,002 records (../shared/data/alpaca_data.json) with lora-mpt's tokenizer
// vs Hugging Face `tokenizers` (Rust, via Python, one thread); the token-length distribution; and
// the padding the data plan wastes with and without --group_by_length at alpaca-lora's settings.
// The Python peer runs when /opt/refpy/bin/python (or $LORA_MPT_REFPY) exists, else it is skipped.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { buildDataPlan } from '../src/data/data-plan.ts';
import { paddingOf } from '../src/data/micro-batch.ts';
import { formatPrompt, loadPromptTemplate } from '../src/data/prompt-template.ts';
import { splitTrainVal } from '../src/data/split.ts';
import { type TokenizedExample, tokenizeExample } from '../src/data/tokenize-example.ts';
import { Tokenizer } from '../src/data/tokenizer.ts';

const shared = (p: string) => fileURLToPath(new URL(`../../shared/data/${p}`, import.meta.url));
const TOKENIZER = shared('gpt-neox-20b/tokenizer.json');
const fixture = (p: string) =>
  fileURLToPath(new URL(`../test/data/fixtures/llama-tok/${p}`, import.meta.url));
/** The Llama-family pipelines, on the small fixtures trained with HF tokenizers (4k vocab). */
const LLAMA_FIXTURES: readonly [string, string][] = [
  ['Llama 2 style (fixture)', fixture('llama2/tokenizer.json')],
  ['Llama 3 style (fixture)', fixture('llama3/tokenizer.json')],
];
const DATA = shared('alpaca_data.json');

interface Row {
  readonly instruction: string;
  readonly input: string;
  readonly output: string;
}

function idsSha256(all: readonly (readonly number[])[]): string {
  const h = createHash('sha256');
  for (const ids of all) h.update(new Uint8Array(Int32Array.from([ids.length, ...ids]).buffer));
  return h.digest('hex');
}

const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

interface PeerResult {
  readonly version: string;
  readonly loop_s: number;
  readonly batch_s: number;
  readonly tokens: number;
  readonly sha256: string;
}

function pythonPeer(texts: readonly string[], tokenizer: string): PeerResult | string {
  const python = process.env.LORA_MPT_REFPY ?? '/opt/refpy/bin/python';
  if (!existsSync(python))
    return `Python peer skipped: ${python} not found (set LORA_MPT_REFPY to a python with tokenizers)`;
  const peer = fileURLToPath(new URL('./tokenize_peer.py', import.meta.url));
  const r = spawnSync(python, [peer, tokenizer], {
    input: JSON.stringify(texts),
    encoding: 'utf8',
    env: { ...process.env, RAYON_NUM_THREADS: '1', TOKENIZERS_PARALLELISM: 'false' },
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) return `Python peer failed: ${r.stderr.trim().split('\n').pop()}`;
  return JSON.parse(r.stdout) as PeerResult;
}

/** Times one tokenizer on all texts (two passes) beside the HF peer; returns the first pass's ids. */
function compareWithPeer(name: string, path: string, texts: readonly string[]): number[][] {
  const tok = Tokenizer.fromFile(path); // a fresh instance: its BPE word cache starts empty
  let t0 = performance.now();
  const ids = texts.map((t) => tok.encode(t));
  const cold = (performance.now() - t0) / 1000;
  t0 = performance.now();
  for (const t of texts) tok.encode(t);
  const warm = (performance.now() - t0) / 1000;
  const tokens = ids.reduce((n, s) => n + s.length, 0);
  console.log(`\n${name}: ${path}`);
  console.log(`lora-mpt (TypeScript) first pass         | ${rate(texts.length, tokens, cold)}`);
  console.log(`lora-mpt (TypeScript) second pass        | ${rate(texts.length, tokens, warm)}`);
  const p = pythonPeer(texts, path);
  if (typeof p === 'string') console.log(p);
  else {
    console.log(`HF tokenizers ${p.version} encode() loop       | ${rate(texts.length, p.tokens, p.loop_s)}`);
    console.log(
      `HF tokenizers ${p.version} encode_batch, 1 thr | ${rate(texts.length, p.tokens, p.batch_s)}`,
    );
    const same = p.sha256 === idsSha256(ids) ? 'identical ids (sha256 of all)' : 'IDS DIFFER from HF';
    console.log(
      `ratio lora-mpt first pass / HF encode() loop: ${(cold / p.loop_s).toFixed(2)}x the time; ${same}`,
    );
  }
  return ids;
}

function rate(records: number, tokens: number, secs: number): string {
  return `${secs.toFixed(2).padStart(6)} s | ${Math.round(records / secs)
    .toLocaleString('en-US')
    .padStart(8)} records/s | ${Math.round(tokens / secs)
    .toLocaleString('en-US')
    .padStart(10)} tokens/s`;
}

function paddingWaste(
  examples: readonly TokenizedExample[],
  group: boolean,
): { waste: number; slots: number } {
  const plan = buildDataPlan({
    examples,
    batchSize: 128,
    microBatchSize: 4,
    numEpochs: 1,
    seed: 42,
    groupByLength: group,
  });
  let pad = 0;
  let slots = 0;
  for (let s = 0; s < plan.totalSteps; s++)
    for (const mb of plan.microBatchesForStep(s)) {
      pad += paddingOf(mb);
      slots += mb.rows * mb.seqLen;
    }
  return { waste: pad / slots, slots };
}

export async function run(): Promise<void> {
  const rows = JSON.parse(readFileSync(DATA, 'utf8')) as Row[];
  const template = loadPromptTemplate('alpaca');
  const texts = rows.map((r) => formatPrompt(template, r.instruction, r.input, r.output));

  console.log(
    `\n## Tokenizing ${rows.length.toLocaleString('en-US')} Alpaca records (prompt + response, alpaca template), one thread`,
  );
  // Other work on the machine slows both sides: the load average says how busy it was.
  console.log(`load average before: ${loadavg()[0]!.toFixed(1)}`);
  console.log('tokenizer                                | time     | records/s         | tokens/s');
  const ids = compareWithPeer('GPT-NeoX-20B (MPT)', TOKENIZER, texts);
  const tok = Tokenizer.fromFile(TOKENIZER);
  for (const [name, path] of LLAMA_FIXTURES) compareWithPeer(name, path, texts);
  console.log(`load average after: ${loadavg()[0]!.toFixed(1)}`);

  const lengths = ids.map((s) => s.length + 1).sort((a, b) => a - b); // + EOS, before any cutoff
  console.log('\n## Token length of prompt + response + EOS, before cutoff_len');
  console.log(
    `p50 ${percentile(lengths, 50)} | p90 ${percentile(lengths, 90)} | p99 ${percentile(lengths, 99)} | max ${lengths.at(-1)} | ` +
      `> 256: ${lengths.filter((l) => l > 256).length} records | > 512: ${lengths.filter((l) => l > 512).length} records`,
  );

  console.log(
    '\n## Padding waste of one epoch (val_set_size 2000, batch 128, micro-batch 4, pad to multiple of 8)',
  );
  console.log('cutoff_len | group_by_length | padded slots | waste  | saved');
  const split = splitTrainVal(rows.length, 2000, 42);
  for (const cutoffLen of [256, 512]) {
    const t0 = performance.now();
    const examples = split.train.map((i) =>
      tokenizeExample(tok, template, rows[i]!, {
        cutoffLen,
        trainOnInputs: false,
        addEosToken: false,
        eosTokenId: 0,
      }),
    );
    const prepSecs = (performance.now() - t0) / 1000;
    const off = paddingWaste(examples, false);
    const on = paddingWaste(examples, true);
    const saved = `${(100 * (1 - on.slots / off.slots)).toFixed(1)}% fewer slots`;
    console.log(
      `${String(cutoffLen).padStart(10)} | off             | ${String(off.slots).padStart(12)} | ${(100 * off.waste).toFixed(1).padStart(5)}% |`,
    );
    console.log(
      `${String(cutoffLen).padStart(10)} | on              | ${String(on.slots).padStart(12)} | ${(100 * on.waste).toFixed(1).padStart(5)}% | ${saved}`,
    );
    console.log(
      `           (tokenizeExample of ${examples.length} train rows, train_on_inputs=false: ${prepSecs.toFixed(2)} s)`,
    );
  }
}

// The JS half of tokenizer_parity.py: formats every Alpaca record with a prompt template and writes
// lora-mpt's token ids (full text, and the user prompt alone) in the ids-file format below, for the
// Python script to compare with Hugging Face `tokenizers`. Not used by the product.
//
// ids file: "LMTKIDS1", u32 meta length, meta JSON, u32 count, then per record u32 index, u32 n,
// n x u16 ids (little-endian). GPT-NeoX ids are < 65536.
import { readFileSync, writeFileSync } from 'node:fs';
import { formatPrompt, loadPromptTemplate } from '../../src/data/prompt-template.ts';
import { Tokenizer } from '../../src/data/tokenizer.ts';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`token-ids.ts: --${name} is required`);
  return v;
}

function writeIds(path: string, meta: object, seqs: readonly (readonly number[])[]): void {
  const metaBytes = Buffer.from(JSON.stringify(meta));
  let size = 8 + 4 + metaBytes.length + 4;
  for (const s of seqs) size += 8 + 2 * s.length;
  const buf = Buffer.alloc(size);
  let o = buf.write('LMTKIDS1', 0, 'latin1');
  o = buf.writeUInt32LE(metaBytes.length, o);
  o += metaBytes.copy(buf, o);
  o = buf.writeUInt32LE(seqs.length, o);
  seqs.forEach((s, index) => {
    o = buf.writeUInt32LE(index, o);
    o = buf.writeUInt32LE(s.length, o);
    for (const id of s) o = buf.writeUInt16LE(id, o);
  });
  writeFileSync(path, buf);
}

const tokenizer = Tokenizer.fromFile(arg('tokenizer'));
const template = loadPromptTemplate(arg('template', 'alpaca'));
const records = JSON.parse(readFileSync(arg('data'), 'utf8')) as { instruction: string; input: string; output: string }[];
const out = arg('out');
const t0 = performance.now();
const full = records.map((r) => tokenizer.encode(formatPrompt(template, r.instruction, r.input, r.output)));
const secs = (performance.now() - t0) / 1000;
const prompt = records.map((r) => tokenizer.encode(formatPrompt(template, r.instruction, r.input)));
writeIds(`${out}.full.bin`, { text: 'full', template: template.source }, full);
writeIds(`${out}.prompt.bin`, { text: 'prompt', template: template.source }, prompt);
console.error(`token-ids.ts: ${records.length} records, full texts in ${secs.toFixed(2)} s`);

// `lora-mpt preprocess`: shows what training will see for each record: the formatted prompt, the
// token ids, and which tokens carry loss. The view for debugging a template, a cutoff or a mask;
// with --json one {"input_ids": [...], "labels": [...]} object per line for other tools.
import { homedir } from 'node:os';
import { loadDataset } from '../data/dataset.ts';
import { formatPrompt, loadPromptTemplate } from '../data/prompt-template.ts';
import { IGNORE_INDEX, supervisedTokens, tokenizeExample } from '../data/tokenize-example.ts';
import { Tokenizer } from '../data/tokenizer.ts';
import { eosAndBos } from '../data/tokenizer-config.ts';
import { hubOptionsFromEnv, resolveTokenizerJson } from '../hub/hf-cache.ts';
import { type Command, flagCommand } from './command.ts';
import { type FlagSpecs, type ParsedFlags, UsageError } from './flags.ts';
import { eventsFromFlags, reportLogFlags } from './log-flags.ts';
import { trainingFlags } from './training-flags.ts';

const flags = {
  base_model: {
    kind: 'string',
    help: 'Model directory holding tokenizer.json, or a Hugging Face model id resolved from the local HF cache. Required unless --tokenizer is given.',
  },
  tokenizer: { kind: 'string', help: 'Path of a tokenizer.json to use instead of the one of --base_model.' },
  data_path: trainingFlags.data_path,
  prompt_template_name: trainingFlags.prompt_template_name,
  cutoff_len: trainingFlags.cutoff_len,
  train_on_inputs: trainingFlags.train_on_inputs,
  add_eos_token: trainingFlags.add_eos_token,
  skip_bad_rows: trainingFlags.skip_bad_rows,
  start: { kind: 'int', default: 0, min: 0, help: 'First record to show (0-based, in file order).' },
  limit: {
    kind: 'int',
    min: -1,
    help: 'How many records to show; -1 for all. Default: 5, or all with --json.',
  },
  json: {
    kind: 'bool',
    default: false,
    help: 'Print one JSON object per record and line, {"input_ids": [...], "labels": [...]}, and nothing else on stdout.',
  },
  // Its messages (rows skipped, files not read) go to stderr: stdout is the records.
  ...reportLogFlags,
} as const satisfies FlagSpecs;

const USAGE = 'lora-mpt preprocess --base_model M --data_path D [--limit N] [--json]';
const DESCRIPTION =
  'Shows, per record, the formatted prompt, its token ids and which tokens are supervised (count toward\n' +
  'the loss), exactly as `finetune` will tokenize it. Supervised tokens are bracketed (green on a\n' +
  'terminal); masked ones (label -100) are plain. Environment: HF_HUB_CACHE / HF_HOME (hub cache),\n' +
  'HF_ENDPOINT, HF_HUB_OFFLINE, HF_TOKEN, NO_COLOR.';

export const preprocessCommand: Command = flagCommand({
  name: 'preprocess',
  summary: 'Show the prompt, token ids and supervised tokens of each record (debug a template or mask)',
  usage: USAGE,
  description: DESCRIPTION,
  flags,
  async run(f) {
    if (f.base_model === undefined && f.tokenizer === undefined)
      throw new UsageError('--base_model (or --tokenizer) is required');
    // Bad input (data, template, tokenizer file, cache) is an Error whose message names it: main prints it.
    return preprocess(f);
  },
});

type Flags = ParsedFlags<typeof flags>;

async function preprocess(f: Flags): Promise<number> {
  const events = eventsFromFlags(f, { label: '', out: process.stderr });
  const hub = hubOptionsFromEnv(process.env, homedir());
  const tokenizerPath = f.tokenizer ?? resolveTokenizerJson(f.base_model!, hub.hubCache);
  const tokenizer = Tokenizer.fromFile(tokenizerPath);
  const { eos } = eosAndBos(tokenizerPath, tokenizer);
  const template = loadPromptTemplate(f.prompt_template_name);
  const data = await loadDataset(f.data_path, { skipBadRows: f.skip_bad_rows, hub });
  if (data.ignoredFiles.length > 0) {
    events.warn('warning', `not data, not read: ${data.ignoredFiles.join(', ')}`, {
      files: data.ignoredFiles,
    });
  }
  for (const s of data.skipped.slice(0, 20)) events.warn('rows_skipped', `skipped: ${s.reason}`);
  if (data.skipped.length > 0) {
    events.warn('rows_skipped', `skipped ${data.skipped.length} bad rows (--skip_bad_rows)`, {
      count: data.skipped.length,
    });
  }

  const limit = f.limit ?? (f.json ? -1 : 5);
  const end = limit < 0 ? data.records.length : Math.min(data.records.length, f.start + limit);
  const opts = {
    cutoffLen: f.cutoff_len,
    trainOnInputs: f.train_on_inputs,
    addEosToken: f.add_eos_token,
    eosTokenId: eos,
  };
  const color = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
  const out: string[] = [];
  const flush = () => {
    if (out.length > 0) process.stdout.write(`${out.join('\n')}\n`);
    out.length = 0;
  };
  for (let i = f.start; i < end; i++) {
    const r = data.records[i]!;
    const e = tokenizeExample(tokenizer, template, r, opts);
    if (f.json) out.push(JSON.stringify({ input_ids: [...e.inputIds], labels: [...e.labels] }));
    else {
      const full = formatPrompt(template, r.instruction, r.input, r.output);
      const rawLen = tokenizer.encode(full).length;
      const note =
        rawLen > f.cutoff_len
          ? `truncated from ${rawLen} at cutoff_len ${f.cutoff_len}, no EOS`
          : e.inputIds.length > rawLen
            ? 'EOS appended'
            : 'no EOS appended (the text ends with EOS or fills cutoff_len)';
      out.push(
        `=== record ${i} (${r.file} row ${r.row}): ${e.inputIds.length} tokens, ${supervisedTokens(e)} supervised, ${note}`,
        '--- prompt ---',
        full,
        '--- tokens: id:"text"; [supervised], plain = masked (-100) ---',
        ...tokenLines(tokenizer, e.inputIds, e.labels, color),
        '',
      );
    }
    if (out.length > 1000) flush();
  }
  flush();
  if (!f.json)
    console.log(`${end - f.start} of ${data.records.length} records shown (${data.files.length} file(s))`);
  return 0;
}

/** Tokens as id:"text", supervised ones bracketed (and green on a terminal), wrapped at ~100 columns. */
function tokenLines(tok: Tokenizer, ids: Int32Array, labels: Int32Array, color: boolean): string[] {
  const lines: string[] = [];
  let line = '';
  let width = 0;
  for (let k = 0; k < ids.length; k++) {
    const plain = `${ids[k]}:${JSON.stringify(tok.decode([ids[k]!], { skipSpecialTokens: false }))}`;
    const supervised = labels[k] !== IGNORE_INDEX;
    const shown = supervised ? `[${plain}]` : plain;
    const painted = color ? (supervised ? `\x1b[32m${shown}\x1b[0m` : `\x1b[2m${shown}\x1b[0m`) : shown;
    if (width > 0 && width + shown.length + 1 > 100) {
      lines.push(line);
      line = '';
      width = 0;
    }
    line += (width > 0 ? ' ' : '') + painted;
    width += shown.length + (width > 0 ? 1 : 0);
  }
  if (line !== '') lines.push(line);
  return lines;
}

// `lora-mpt eval`: mean cross-entropy, perplexity and supervised-token count of a base model, with or
// without a PEFT LoRA adapter, over Alpaca-style data (tokenized and masked exactly as `finetune`
// does) or over a raw text (every token after the first is predicted).
import { homedir } from 'node:os';
import { readPeftAdapter } from '../checkpoint/peft-adapter.ts';
import { buildEvalMicroBatches } from '../data/data-plan.ts';
import { DataError, loadDataset } from '../data/dataset.ts';
import { loadPromptTemplate } from '../data/prompt-template.ts';
import { type TokenizedExample, tokenizeExample } from '../data/tokenize-example.ts';
import { Tokenizer } from '../data/tokenizer.ts';
import { eosAndBos } from '../data/tokenizer-config.ts';
import { loadProgress } from '../events/load-progress.ts';
import { openCheckpoint, readCheckpointConfig } from '../families/checkpoint.ts';
import { loadModelWithAdapter } from '../families/load-model.ts';
import { hubOptionsFromEnv } from '../hub/hf-cache.ts';
import { resolveModel } from '../hub/models.ts';
import { BACKEND_CHOICES, type BackendChoice, initBackend } from '../model/backend.ts';
import { evaluateLoss } from '../model/forward.ts';
import { checkModelMemory } from '../worker/memory-check.ts';
import { backendOptions } from './backend-options.ts';
import { type Command, flagCommand } from './command.ts';
import { deviceMemoryFlag, numThreadsFlag } from './compute-flags.ts';
import { type FlagSpecs, type ParsedFlags, UsageError } from './flags.ts';
import { eventsFromFlags, reportLogFlags } from './log-flags.ts';
import { trainingFlags } from './training-flags.ts';

const flags = {
  base_model: trainingFlags.base_model,
  lora_weights: {
    kind: 'string',
    help: 'A PEFT LoRA adapter directory (adapter_config.json + weights) to apply.',
  },
  data_path: {
    kind: 'string',
    help: 'Alpaca-style data to evaluate (same formats as finetune --data_path).',
  },
  text: {
    kind: 'string',
    help: 'A raw text to evaluate instead of --data_path (no prompt template, no masking).',
  },
  prompt_template_name: trainingFlags.prompt_template_name,
  cutoff_len: trainingFlags.cutoff_len,
  train_on_inputs: trainingFlags.train_on_inputs,
  add_eos_token: trainingFlags.add_eos_token,
  micro_batch_size: trainingFlags.micro_batch_size,
  skip_bad_rows: trainingFlags.skip_bad_rows,
  tokenizer: trainingFlags.tokenizer,
  backend: trainingFlags.backend,
  num_threads: numThreadsFlag,
  device_memory_gb: deviceMemoryFlag,
  load_8bit: trainingFlags.load_8bit,
  json: {
    kind: 'bool',
    default: false,
    help: 'Print one JSON object {"loss", "perplexity", "tokens", "examples"}.',
  },
  // Its messages (backend, memory, loading progress) go to stderr: stdout is the result.
  ...reportLogFlags,
} as const satisfies FlagSpecs;

const USAGE = 'lora-mpt eval --base_model M [--lora_weights A] (--data_path D | --text T) [--json]';
const DESCRIPTION =
  'Prints the mean cross-entropy over supervised tokens (labels != -100 after the one-token shift), its\n' +
  'perplexity exp(loss) and the token count. Data is tokenized and masked as finetune does it.';

export const evalCommand: Command = flagCommand({
  name: 'eval',
  summary: 'Mean loss, perplexity and token count of a model (+ adapter) on data or a text',
  usage: USAGE,
  description: DESCRIPTION,
  flags,
  async run(f) {
    if (f.base_model === undefined) throw new UsageError('--base_model is required');
    if ((f.data_path === undefined) === (f.text === undefined)) {
      throw new UsageError('give exactly one of --data_path and --text');
    }
    if (!BACKEND_CHOICES.includes(f.backend as BackendChoice)) {
      throw new UsageError(`--backend ${f.backend}: expected one of ${BACKEND_CHOICES.join(', ')}`);
    }
    // Bad input (data, adapter, model files) is an Error whose message names it: main prints it.
    return evaluate(f);
  },
});

type Flags = ParsedFlags<typeof flags>;

/** Raw text as windows of at most `len` tokens, every token a label (the model shifts them). */
function textExamples(ids: readonly number[], len: number): TokenizedExample[] {
  const out: TokenizedExample[] = [];
  for (let at = 0; at < ids.length; at += len) {
    const part = Int32Array.from(ids.slice(at, at + len));
    out.push({ inputIds: part, labels: part });
  }
  return out;
}

async function evaluate(f: Flags): Promise<number> {
  const events = eventsFromFlags(f, { label: '', out: process.stderr });
  const resolved = await resolveModel(
    f.base_model as string,
    { ...process.env, HOME: homedir() },
    'main',
    hubOptionsFromEnv(process.env, homedir()),
  );
  const tokenizerPath = f.tokenizer ?? resolved.tokenizerJson;
  if (tokenizerPath === null) {
    throw new UsageError(
      `--base_model ${f.base_model}: no tokenizer.json beside the weights; pass --tokenizer PATH`,
    );
  }
  const tokenizer = Tokenizer.fromFile(tokenizerPath);
  const backend = await initBackend(f.backend as BackendChoice, backendOptions(f.num_threads, process.env));
  events.info('backend_selected', backend.summary); // stderr: --json keeps stdout one object
  // Before any weight file is opened: LoRA state is counted at r = 8 on each block's first Linear (MPT's
  // Wqkv) when an adapter is given.
  const { config } = await readCheckpointConfig(resolved.dir);
  const note = checkModelMemory(config, backend, {
    microBatchSize: f.micro_batch_size,
    cutoffLen: f.cutoff_len,
    load8bit: f.load_8bit,
    gradientCheckpointing: false,
    lora: {
      r: 8,
      loraAlpha: 16,
      loraDropout: 0,
      targetModules: config.arch.linears.slice(0, 1).map((l) => l.name),
    },
    memoryGib: f.device_memory_gb,
    training: false,
  });
  if (note !== null) events.warn('eval_note', note);
  const ckpt = await openCheckpoint(resolved.dir);
  const cutoff = Math.min(f.cutoff_len, ckpt.config.maxSeqLen);
  let examples: TokenizedExample[];
  if (f.text !== undefined) {
    examples = textExamples(tokenizer.encode(f.text), cutoff);
  } else {
    const { eos } = eosAndBos(tokenizerPath, tokenizer);
    const data = await loadDataset(f.data_path as string, { skipBadRows: f.skip_bad_rows });
    const template = loadPromptTemplate(f.prompt_template_name);
    const opts = {
      cutoffLen: cutoff,
      trainOnInputs: f.train_on_inputs,
      addEosToken: f.add_eos_token,
      eosTokenId: eos,
    };
    examples = data.records.map((r) => tokenizeExample(tokenizer, template, r, opts));
  }
  const adapter = f.lora_weights === undefined ? null : await readPeftAdapter(f.lora_weights);
  const model = await loadModelWithAdapter(
    ckpt.config,
    ckpt.tensors(),
    adapter,
    `--lora_weights ${f.lora_weights}`,
    {
      layout: backend.layout,
      load8bit: f.load_8bit,
      // stderr, as the backend line: --json keeps stdout one object
      onTensor: loadProgress(events, f.base_model as string),
    },
  );
  let lossSum = 0;
  let tokens = 0;
  for (const mb of buildEvalMicroBatches(examples, f.micro_batch_size)) {
    const r = await evaluateLoss(model, mb);
    lossSum += r.lossSum;
    tokens += r.supervisedTokens;
  }
  model.dispose();
  if (tokens === 0) throw new DataError('no supervised tokens to evaluate (every label is -100)');
  const loss = lossSum / tokens;
  const result = { loss, perplexity: Math.exp(loss), tokens, examples: examples.length };
  if (f.json) console.log(JSON.stringify(result));
  else {
    const adapter = f.lora_weights === undefined ? '' : ` + ${f.lora_weights}`;
    console.log(
      `${f.base_model}${adapter} on ${backend.name}: ${examples.length} examples, ${tokens} tokens`,
    );
    console.log(`loss ${loss.toFixed(4)}  perplexity ${result.perplexity.toFixed(3)}`);
  }
  return 0;
}

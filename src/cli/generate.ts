// `lora-mpt generate`: the seed's generate.py. Loads a base model (+ a PEFT adapter) and serves the
// web page and an OpenAI-compatible API until stopped; with --instruction it answers once on stdout
// and exits (events then go to stderr, so stdout holds the answer only).
import { homedir } from 'node:os';
import { createEvents, type Events } from '../events/events.ts';
import { loadProgress } from '../events/load-progress.ts';
import { TRANSFORMERS_DEFAULTS } from '../generate/decode.ts';
import type { GenerationEngine } from '../generate/engine.ts';
import { loadEngine } from '../generate/load-engine.ts';
import { hubOptionsFromEnv } from '../hub/hf-cache.ts';
import { BACKEND_CHOICES, type BackendChoice, initBackend } from '../model/backend.ts';
import { serve } from '../serve/server.ts';
import { type ServerAccess, serverAccessOf, warnIfOpen } from './api-key-flags.ts';
import { backendOptions } from './backend-options.ts';
import { type Command, flagCommand } from './command.ts';
import { type ParsedFlags, UsageError } from './flags.ts';
import { generateFlags } from './generate-flags.ts';
import { eventsFromFlags } from './log-flags.ts';
import { stopOnSignals } from './stop-signals.ts';

type Flags = ParsedFlags<typeof generateFlags>;

const USAGE =
  'lora-mpt generate --base_model M [--lora_weights A] [--load_8bit] [--prompt_template_name T] [--server_name 127.0.0.1] [--port 7860] [--api_key_file F] [--instruction "..."]';
const DESCRIPTION =
  "Serves generate.py's web page (Instruction, Input, Temperature, Top p, Top k, Beams, Max tokens,\n" +
  'Stream output) at http://SERVER_NAME:PORT/, plus POST /v1/completions and /v1/chat/completions\n' +
  '(OpenAI-compatible, JSON or SSE streaming; chat applies the Alpaca template), GET /v1/models and\n' +
  "GET /healthz. Decoding is transformers' generate: greedy, beam search (Beams > 1) or sampling.\n" +
  'With an API key (--api_key_file or $LORA_MPT_API_KEY) the API requires Authorization: Bearer.\n' +
  'With --instruction it prints one answer and exits. See docs/generate.md.';

function oneShotEvents(f: Flags): Events {
  if (!['auto', 'json', 'text'].includes(f.log_format)) {
    throw new UsageError(`--log_format ${f.log_format}: expected auto, json or text`);
  }
  const format =
    f.log_format === 'auto' ? (process.stderr.isTTY ? 'text' : 'json') : (f.log_format as 'json' | 'text');
  return createEvents({ label: 'generate', format, level: f.log_level as 'info', out: process.stderr });
}

function checkFlags(f: Flags): { baseModel: string; template: string; access: ServerAccess | null } {
  const baseModel = f.base_model ?? process.env.BASE_MODEL;
  if (baseModel === undefined || baseModel === '') {
    throw new UsageError(
      '--base_model is required (or set BASE_MODEL), e.g. --base_model mosaicml/mpt-7b-instruct',
    );
  }
  if (!BACKEND_CHOICES.includes(f.backend as BackendChoice)) {
    throw new UsageError(`--backend ${f.backend}: expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  if (f.share_gradio)
    throw new UsageError(
      '--share_gradio: there is no Gradio share tunnel; serve with --server_name 0.0.0.0 behind your own proxy',
    );
  if (
    f.prompt_template !== undefined &&
    f.prompt_template_name !== '' &&
    f.prompt_template !== f.prompt_template_name
  ) {
    throw new UsageError(
      `--prompt_template ${f.prompt_template} and --prompt_template_name ${f.prompt_template_name} disagree: give one`,
    );
  }
  if (f.instruction !== undefined) {
    if (f.sample && f.num_beams > 1)
      throw new UsageError('--sample draws one sequence: use it with --num_beams 1');
    if (f.sample && f.temperature === 0)
      throw new UsageError('--temperature 0 cannot sample: drop --sample for greedy decoding');
    if (f.stream && f.num_beams > 1)
      throw new UsageError(
        '--stream prints tokens as they come: use it with --num_beams 1 (beam search knows its answer only at the end)',
      );
  }
  // One-shot mode serves nothing, so it needs no key.
  const access = f.instruction === undefined ? serverAccessOf(f, process.env) : null;
  return { baseModel, template: f.prompt_template ?? f.prompt_template_name, access };
}

async function load(
  f: Flags,
  baseModel: string,
  template: string,
  events: Events,
): Promise<GenerationEngine> {
  const backend = await initBackend(f.backend as BackendChoice, backendOptions(f.num_threads, process.env));
  events.info('backend_selected', backend.summary, { backend: backend.name });
  const engine = await loadEngine({
    baseModel,
    loraWeights: f.lora_weights ?? null,
    load8bit: f.load_8bit,
    promptTemplateName: template,
    tokenizer: f.tokenizer ?? null,
    layout: backend.layout,
    hubEnv: { ...process.env, HOME: homedir() },
    hubOptions: hubOptionsFromEnv(process.env, homedir()),
    onTensor: loadProgress(events, baseModel),
  });
  events.info(
    'model_loaded',
    `model: ${engine.name} on ${backend.name} (context ${engine.contextLength} tokens)`,
    {
      backend: backend.name,
      context: engine.contextLength,
    },
  );
  return engine;
}

async function answerOnce(f: Flags, engine: GenerationEngine, events: Events): Promise<number> {
  let printed = '';
  const result = await engine.generate(
    { kind: 'instruction', instruction: f.instruction as string, input: f.input },
    {
      maxNewTokens: f.max_new_tokens,
      numBeams: f.num_beams,
      doSample: f.sample,
      temperature: f.sample ? f.temperature : 1,
      topK: f.top_k,
      topP: f.top_p,
      seed: f.seed ?? null,
      ...TRANSFORMERS_DEFAULTS,
    },
    f.stream
      ? {
          onText: (stable) => {
            process.stdout.write(stable.slice(printed.length));
            printed = stable;
          },
        }
      : {},
  );
  process.stdout.write(f.stream ? `${result.text.slice(printed.length)}\n` : `${result.text}\n`);
  events.info('generation_finished', `${result.completionTokens} tokens (${result.finishReason})`, {
    finish_reason: result.finishReason,
    prompt_tokens: result.promptTokens,
    completion_tokens: result.completionTokens,
    limited_by_context: result.limitedByContext,
    seed: result.seed,
  });
  return 0;
}

export const generateCommand: Command = flagCommand({
  name: 'generate',
  summary: 'Talk to a model (+ adapter): web page, OpenAI-compatible API, or one answer (--instruction)',
  usage: USAGE,
  description: DESCRIPTION,
  flags: generateFlags,
  async run(f) {
    const { baseModel, template, access } = checkFlags(f);
    const events = access === null ? oneShotEvents(f) : eventsFromFlags(f, { label: 'generate' });
    if (access !== null) warnIfOpen(access, f.server_name, events);
    const engine = await load(f, baseModel, template, events);
    if (access === null) return answerOnce(f, engine, events);
    const server = await serve(engine, {
      host: f.server_name,
      port: f.port,
      maxWaiting: f.max_queue,
      apiKey: access.apiKey,
      events,
    });
    // Serves until SIGTERM/SIGINT; exits 128 + the signal's number, as the training commands do.
    let stopped: () => void = () => {};
    const stop = new Promise<void>((resolve) => {
      stopped = resolve;
    });
    const signals = stopOnSignals(() => stopped());
    await stop;
    signals.dispose();
    await server.close();
    engine.dispose();
    return signals.exitCode();
  },
});

// The flags of `lora-mpt generate`: generate.py's (load_8bit, base_model, lora_weights,
// prompt_template, server_name, share_gradio) with the same spellings, the server's API key, lora-mpt's
// usual model flags, the one-shot mode, and the decoding settings, with the page's defaults (generate.py's evaluate()).
import { apiKeyFlags } from './api-key-flags.ts';
import { numThreadsFlag } from './compute-flags.ts';
import type { FlagSpecs } from './flags.ts';
import { logFlags } from './log-flags.ts';
import { trainingFlags } from './training-flags.ts';

export const generateFlags = {
  base_model: {
    kind: 'string',
    help: 'MPT checkpoint: a local directory (also one written by `lora-mpt merge`) or a cached Hugging Face id such as mosaicml/mpt-7b-instruct. Required (else the BASE_MODEL environment variable, as generate.py).',
  },
  lora_weights: {
    kind: 'string',
    help: 'A PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors or .bin), written by lora-mpt or by Python PEFT. Omit it to talk to the base model alone. (generate.py defaults to tloen/alpaca-lora-7b, a LLaMA adapter that cannot apply to MPT.)',
  },
  load_8bit: trainingFlags.load_8bit,
  prompt_template_name: {
    kind: 'string',
    default: '',
    help: 'Prompt template: alpaca (also when empty), alpaca_legacy, alpaca_short, or the path of a JSON file of the same shape.',
  },
  prompt_template: {
    kind: 'string',
    help: "generate.py's name for --prompt_template_name (either may be given, not both).",
  },
  server_name: {
    kind: 'string',
    default: '127.0.0.1',
    help: 'Address to listen on. generate.py always listens on 0.0.0.0; here that must be asked for (--server_name 0.0.0.0), and an address beyond loopback (other than 127.0.0.1, ::1, localhost) needs an API key (--api_key_file or $LORA_MPT_API_KEY) or --insecure.',
  },
  port: { kind: 'int', default: 7860, min: 0, help: 'Port of the web page and the API (0: any free port).' },
  ...apiKeyFlags,
  share_gradio: {
    kind: 'bool',
    default: false,
    help: 'Accepted for generate.py compatibility; there is no Gradio share tunnel here (true is an error).',
  },
  max_queue: {
    kind: 'int',
    default: 16,
    min: 0,
    help: 'Requests that may wait while one generates; more get HTTP 429.',
  },
  instruction: {
    kind: 'string',
    help: 'One-shot mode: answer this instruction, print the answer on stdout and exit (no server).',
  },
  input: { kind: 'string', default: '', help: 'One-shot mode: the Input of the instruction (optional).' },
  temperature: {
    kind: 'float',
    default: 0.1,
    min: 0,
    help: 'One-shot mode: sampling temperature (used with --sample only, as in generate.py).',
  },
  top_p: { kind: 'float', default: 0.75, min: 0, help: 'One-shot mode: top-p (with --sample only).' },
  top_k: { kind: 'int', default: 40, min: 0, help: 'One-shot mode: top-k, 0 = off (with --sample only).' },
  num_beams: {
    kind: 'int',
    default: 4,
    min: 1,
    help: 'One-shot mode: beams; 1 = greedy (or sampling with --sample), > 1 = beam search.',
  },
  max_new_tokens: { kind: 'int', default: 128, min: 1, help: 'One-shot mode: most new tokens.' },
  sample: {
    kind: 'bool',
    default: false,
    help: 'One-shot mode: sample (temperature, top-k, top-p) instead of greedy/beam search; needs --num_beams 1.',
  },
  seed: { kind: 'int', min: 0, help: 'One-shot mode: the sampling seed (default: a random one, printed).' },
  stream: {
    kind: 'bool',
    default: false,
    help: 'One-shot mode: print the answer as it is generated (greedy or sampling).',
  },
  tokenizer: trainingFlags.tokenizer,
  backend: trainingFlags.backend,
  num_threads: numThreadsFlag,
  ...logFlags,
} as const satisfies FlagSpecs;

// The flags of `lora-mpt finetune` (and of `coordinator`, which takes the same training flags):
// every flag of the seed's finetune.py / alpaca-lora's finetune.py with the same spelling, default
// and list syntax, plus lora-mpt's own extras. `--help` prints these texts.
import { LORA_FLAGS } from '../checkpoint/lora-spec.ts';
import type { FlagSpecs } from './flags.ts';

export const trainingFlags = {
  base_model: {
    kind: 'string',
    help: 'MPT checkpoint: a local directory (config.json + safetensors or pytorch_model*.bin) or a Hugging Face id such as mosaicml/mpt-7b-instruct, resolved from the local HF cache; or synthetic:NAME (mpt-7b, mpt-7b-8k, mpt-30b) or synthetic:PATH (a config.json or its directory, no weights read) for --backend synthetic. Required.',
  },
  data_path: {
    kind: 'string',
    default: 'yahma/alpaca-cleaned',
    help: 'Instruction data: a .json array or .jsonl of {instruction, input, output}, a .parquet file, a directory of those, or a Hugging Face dataset id resolved from the local HF cache.',
  },
  output_dir: {
    kind: 'string',
    default: './lora-alpaca',
    help: 'Where the adapter (adapter_model.safetensors + adapter_config.json), checkpoint-<step>/ folders and metrics.jsonl are written.',
  },
  batch_size: {
    kind: 'int',
    default: 128,
    min: 1,
    help: 'Examples per optimizer step (the global batch). Gradient accumulation = batch_size / micro_batch_size.',
  },
  micro_batch_size: { kind: 'int', default: 4, min: 1, help: 'Examples per forward/backward pass.' },
  num_epochs: { kind: 'int', default: 3, min: 1, help: 'Passes over the training set.' },
  learning_rate: { kind: 'float', default: 3e-4, min: 0, help: 'Peak AdamW learning rate (after warmup).' },
  cutoff_len: {
    kind: 'int',
    default: 256,
    min: 2,
    help: 'Maximum tokens per example; longer prompts are truncated (and get no EOS).',
  },
  val_set_size: {
    kind: 'int',
    default: 2000,
    min: 0,
    help: 'Examples held out for evaluation (seeded split, seed 42). 0: no validation set.',
  },
  // The LoRA spec's flags (src/checkpoint/lora-spec.ts: no declared default, a resumed adapter's
  // adapter_config.json supplies what no flag gives).
  ...LORA_FLAGS,
  train_on_inputs: {
    kind: 'bool',
    default: true,
    help: 'Compute the loss on the prompt tokens too. --train_on_inputs=False masks the instruction and input with -100.',
  },
  add_eos_token: {
    kind: 'bool',
    default: false,
    help: 'Whether the prompt-only tokenization (used for masking when train_on_inputs is off) ends with EOS, as in alpaca-lora.',
  },
  group_by_length: {
    kind: 'bool',
    default: false,
    help: 'Build micro-batches of examples of similar length: less padding, faster steps; see docs/data.md.',
  },
  wandb_project: {
    kind: 'string',
    default: '',
    help: 'Accepted for compatibility; Weights & Biases is not supported (use the Prometheus metrics and metrics.jsonl). A non-empty value prints a warning.',
  },
  wandb_run_name: {
    kind: 'string',
    default: '',
    help: 'Accepted for compatibility; unsupported (see --wandb_project).',
  },
  wandb_watch: {
    kind: 'string',
    default: '',
    help: 'Accepted for compatibility; unsupported (see --wandb_project).',
  },
  wandb_log_model: {
    kind: 'string',
    default: '',
    help: 'Accepted for compatibility; unsupported (see --wandb_project).',
  },
  resume_from_checkpoint: {
    kind: 'string',
    help: 'Resume from a checkpoint-<step> directory (exact: adapter, optimizer moments, step, data cursor), or from an adapter directory (weights only, like alpaca-lora). "latest" picks the newest checkpoint in output_dir.',
  },
  prompt_template_name: {
    kind: 'string',
    default: 'alpaca',
    help: 'Prompt template: alpaca, alpaca_legacy, alpaca_short, or the path of a JSON file of the same shape.',
  },
  // lora-mpt extras
  max_steps: { kind: 'int', default: -1, help: 'Stop after this many optimizer steps (-1: run num_epochs).' },
  seed: { kind: 'int', default: 42, help: 'Seed for shuffling, LoRA initialisation and dropout.' },
  backend: {
    kind: 'string',
    default: 'auto',
    help: 'Compute backend: auto (tensorflow when @tensorflow/tfjs-node[-gpu] is installed, else wasm), tensorflow, tensorflow-gpu (the GPU binding on a GPU, proven at start, or exit; as LORA_MPT_REQUIRE_GPU=1), wasm, cpu, or synthetic (no model: gradients of the exact size of --base_model synthetic:NAME|PATH and the time --gpu_profile would take; docs/scale.md).',
  },
  gradient_checkpointing: {
    kind: 'bool',
    default: false,
    help: 'Recompute each block in the backward pass instead of keeping its activations: less memory, ~30% more compute.',
  },
  load_8bit: {
    kind: 'bool',
    default: false,
    help: 'Keep the frozen base weights as int8 with per-output-channel scales (about 1/4 of the float32 memory).',
  },
  eval_steps: { kind: 'int', default: 200, min: 1, help: 'Evaluate on the validation set every N steps.' },
  save_steps: { kind: 'int', default: 200, min: 1, help: 'Write checkpoint-<step>/ every N steps.' },
  save_total_limit: {
    kind: 'int',
    default: 3,
    help: 'Keep at most N checkpoints (the best is always kept); <= 0 keeps all.',
  },
  warmup_steps: { kind: 'int', default: 100, min: 0, help: 'Steps of linear learning-rate warmup from 0.' },
  logging_steps: {
    kind: 'int',
    default: 10,
    min: 1,
    help: 'Log loss, learning rate and throughput every N steps.',
  },
  tokenizer: {
    kind: 'string',
    help: 'tokenizer.json to use instead of the one beside the base model weights.',
  },
  skip_bad_rows: {
    kind: 'bool',
    default: false,
    help: 'Skip (and count) dataset rows with a missing or non-string field instead of stopping with an error.',
  },
} as const satisfies FlagSpecs;

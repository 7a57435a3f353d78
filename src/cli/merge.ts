// `lora-mpt merge`: a base model with a PEFT adapter (LoRA or DoRA, from lora-mpt or Python PEFT)
// folded in, written as a plain transformers checkpoint (sharded safetensors in the base's dtype or
// --dtype + index + config.json + tokenizer) that `from_pretrained`, `lora-mpt eval` and `lora-mpt generate` load.
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { mergePlan } from '../checkpoint/merge-adapter.ts';
import {
  DTYPE_CHOICES,
  isDtypeChoice,
  resolveMergedDtype,
  TORCH_DTYPE_NAME,
} from '../checkpoint/merged-dtype.ts';
import { readPeftAdapter } from '../checkpoint/peft-adapter.ts';
import { parseShardSize } from '../checkpoint/shard-plan.ts';
import { COMPANION_FILES, writeMergedCheckpoint } from '../checkpoint/write-merged.ts';
import { openCheckpoint } from '../families/checkpoint.ts';
import { hubOptionsFromEnv } from '../hub/hf-cache.ts';
import { resolveModel } from '../hub/models.ts';
import { type Command, flagCommand } from './command.ts';
import { type FlagSpecs, UsageError } from './flags.ts';
import { eventsFromFlags, reportLogFlags } from './log-flags.ts';
import { trainingFlags } from './training-flags.ts';

const flags = {
  base_model: trainingFlags.base_model,
  lora_weights: {
    kind: 'string',
    help: 'The PEFT adapter directory to merge (adapter_config.json + adapter_model.safetensors or .bin). Required.',
  },
  output_dir: {
    kind: 'string',
    help: 'Where the merged model goes: a new or empty directory (nothing is overwritten). Required.',
  },
  dtype: {
    kind: 'string',
    default: 'auto',
    help:
      "Dtype of the written weights: auto (the base checkpoint's own: bfloat16 for MPT-7B; float32 when its tensors are mixed), float32, bfloat16 or float16. " +
      'Adapters are merged in float32 and each result rounded once to nearest-even, as PEFT merges on a bf16/fp16 base; unadapted tensors are converted the same way (bit for bit when already in that dtype).',
  },
  max_shard_size: {
    kind: 'string',
    default: '5GB',
    help: 'Largest weight file, as transformers reads it (5GB = 5·10^9 bytes, 2GiB = 2·2^30); more weights are split into model-0000i-of-0000n.safetensors with model.safetensors.index.json.',
  },
  tokenizer: {
    kind: 'string',
    help: 'tokenizer.json to write beside the merged weights when the base model has none beside its own.',
  },
  ...reportLogFlags,
} as const satisfies FlagSpecs;

const isFile = (p: string) =>
  stat(p).then(
    (s) => s.isFile(),
    () => false,
  );

export const mergeCommand: Command = flagCommand({
  name: 'merge',
  summary: 'Fold a PEFT adapter into the base weights: a checkpoint transformers, eval and generate load',
  usage:
    'lora-mpt merge --base_model M --lora_weights A --output_dir D [--dtype auto] [--max_shard_size 5GB]',
  description:
    "Writes W + (alpha/r)·B·A for every adapted Linear (DoRA: rescaled by the magnitude vector), as PEFT's\n" +
    "merge_and_unload, in safetensors shards of the base's dtype (--dtype) with their index, config.json\n" +
    '(its dtype set) and the tokenizer files.',
  flags,
  async run(f) {
    const events = eventsFromFlags(f, { label: '' });
    for (const name of ['base_model', 'lora_weights', 'output_dir'] as const) {
      if (f[name] === undefined) throw new UsageError(`--${name} is required`);
    }
    if (!isDtypeChoice(f.dtype)) {
      throw new UsageError(`--dtype "${f.dtype}": expected one of ${DTYPE_CHOICES.join(', ')}`);
    }
    let maxShardSize: number;
    try {
      maxShardSize = parseShardSize(f.max_shard_size);
    } catch (err) {
      throw new UsageError(`--${(err as Error).message}`);
    }
    const resolved = await resolveModel(
      f.base_model as string,
      { ...process.env, HOME: homedir() },
      'main',
      hubOptionsFromEnv(process.env, homedir()),
    );
    const ckpt = await openCheckpoint(resolved.dir);
    const adapter = await readPeftAdapter(f.lora_weights as string);
    const plan = mergePlan(ckpt.config, adapter, 'inference', `--lora_weights ${f.lora_weights}`);
    const companions = new Map<string, string>();
    for (const name of COMPANION_FILES) {
      const from = join(resolved.dir, name);
      if (await isFile(from)) companions.set(name, from);
    }
    if (f.tokenizer !== undefined) companions.set('tokenizer.json', f.tokenizer);
    else if (!companions.has('tokenizer.json') && resolved.tokenizerJson !== null) {
      companions.set('tokenizer.json', resolved.tokenizerJson);
    }
    const { dtype, reason } = resolveMergedDtype(f.dtype, ckpt.tensorInfo);
    const out = await writeMergedCheckpoint(ckpt, plan, f.output_dir as string, {
      dtype,
      maxShardSize,
      companions,
    });
    const mb = (out.totalSize / 1e6).toFixed(1);
    events.info(
      'model_merged',
      `merged ${out.mergedWeights} weights of ${f.lora_weights} into ${resolved.dir}: ${out.weightFiles.length} file(s), ${mb} MB ${TORCH_DTYPE_NAME[dtype]} (${reason}), in ${out.dir}`,
      { dir: out.dir, files: out.weightFiles, bytes: out.totalSize, dtype: TORCH_DTYPE_NAME[dtype] },
    );
    if (!companions.has('tokenizer.json')) {
      events.warn(
        'warning',
        `no tokenizer.json was found beside ${resolved.dir}: pass --tokenizer, or copy one into ${out.dir}`,
      );
    } else events.info('companions_written', `with ${out.companions.join(', ')}`, { files: out.companions });
    return 0;
  },
});

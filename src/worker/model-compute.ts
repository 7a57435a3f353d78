// The compute side of a replica: loads the run's base model on this process's backend, sets the LoRA
// weights from the flat replica state, and turns micro-batches into a loss sum, a token count and a
// flat gradient (src/model does the math). Used by every worker and by single-process `finetune`.

import type { LoraSettings } from '../checkpoint/lora-spec.ts';
import { loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import type { MicroBatch } from '../data/micro-batch.ts';
import { openCheckpoint, readCheckpointConfig } from '../families/checkpoint.ts';
import { loadModel } from '../families/load-model.ts';
import { type BackendChoice, type BackendOptions, initBackend } from '../model/backend.ts';
import type { CausalLm } from '../model/causal-lm.ts';
import { type FlopsModel, flopsModelOf } from '../model/flops.ts';
import { evaluateLoss } from '../model/forward.ts';
import { computeLoraGradients } from '../model/train-step.ts';
import { adapterLayout } from '../train/adapter-layout.ts';
import { flatten, type ParamLayout, unflatten } from '../train/param-layout.ts';
import { checkModelMemory } from './memory-check.ts';

export interface MicroBatchCompute {
  /** Sets the LoRA weights (flat, in layout order) used by the following micro-batches. */
  setAdapter(params: Float32Array): void;
  /** Gradient of the SUM of token losses, flat in layout order (a new array the caller may keep). */
  train(mb: MicroBatch): Promise<{ lossSum: number; tokens: number; grad: Float32Array }>;
  evaluate(mb: MicroBatch): Promise<{ lossSum: number; tokens: number }>;
}

/** What the compute of a run needs: the LoRA spec and how to run it (a RunConfig is one). */
export interface LoraRunSettings {
  readonly lora: LoraSettings;
  readonly seed: number;
  readonly gradientCheckpointing: boolean;
  readonly load8bit: boolean;
}

export class ModelCompute implements MicroBatchCompute {
  constructor(
    readonly model: CausalLm,
    readonly layout: ParamLayout,
    private readonly s: LoraRunSettings,
  ) {}

  setAdapter(params: Float32Array): void {
    this.model.setLoraWeights(unflatten(this.layout, params));
  }

  /** The micro-batch id seeds LoRA dropout, so any process drops the same inputs. */
  async train(mb: MicroBatch): Promise<{ lossSum: number; tokens: number; grad: Float32Array }> {
    const r = await computeLoraGradients(this.model, mb, {
      gradientCheckpointing: this.s.gradientCheckpointing,
      ...(this.s.lora.loraDropout > 0 ? { dropout: { seed: this.s.seed, microBatch: mb.id } } : {}),
    });
    return { lossSum: r.lossSum, tokens: r.supervisedTokens, grad: flatten(this.layout, r.grads) };
  }

  async evaluate(mb: MicroBatch): Promise<{ lossSum: number; tokens: number }> {
    const r = await evaluateLoss(this.model, mb);
    return { lossSum: r.lossSum, tokens: r.supervisedTokens };
  }
}

export interface LoadedCompute {
  readonly compute: ModelCompute;
  readonly layout: ParamLayout;
  readonly fingerprint: string;
  readonly backend: string;
  /** Which backend runs and why, for the process's log. */
  readonly backendSummary: string;
  readonly parameters: number;
  /** The model's FLOPs count (src/model/flops.ts), for the worker's MFU. */
  readonly flops: FlopsModel;
  /** Set when the memory check could not run (a GPU without --device_memory_gb), for the log. */
  readonly memoryNote: string | null;
}

/** The micro-batch shape and memory budget of the check before loading (src/worker/memory-check.ts). */
export interface MemoryBudget {
  /** 0 where not known before the first micro-batch (a cluster worker). */
  readonly microBatchSize: number;
  readonly cutoffLen: number;
  /** --device_memory_gb; 0 = what the machine has available. */
  readonly memoryGib: number;
}

/** Starts the backend and checks that `baseModelDir` (its config.json only) fits the memory this
 * process has; throws MemoryError naming the numbers and the flags that would fit. */
export async function checkBeforeLoading(
  baseModelDir: string,
  backend: BackendChoice,
  s: LoraRunSettings,
  budget: MemoryBudget,
  options: BackendOptions = {},
): Promise<string | null> {
  const active = await initBackend(backend, options);
  const { config } = await readCheckpointConfig(baseModelDir);
  return checkModelMemory(config, active, {
    ...budget,
    load8bit: s.load8bit,
    gradientCheckpointing: s.gradientCheckpointing,
    lora: s.lora,
    training: true,
  });
}

/** Starts the backend, checks the memory (before any weight file is opened) and loads `baseModelDir`
 * with the run's LoRA targets; `onTensor` hears of each weight tensor loaded (progress). */
export async function loadModelCompute(
  baseModelDir: string,
  backend: BackendChoice,
  s: LoraRunSettings,
  budget: MemoryBudget,
  options: BackendOptions = {},
  onTensor?: (loaded: number, expected: number) => void,
): Promise<LoadedCompute> {
  const memoryNote = await checkBeforeLoading(baseModelDir, backend, s, budget, options);
  const active = await initBackend(backend, options);
  const ckpt = await openCheckpoint(baseModelDir);
  const model = await loadModel(ckpt.config, ckpt.tensors(), {
    layout: active.layout,
    load8bit: s.load8bit,
    ...(onTensor ? { onTensor } : {}),
  });
  model.configureLora(s.lora);
  const { layout, targets } = adapterLayout(ckpt.config, s.lora);
  const parameters = ckpt.tensorInfo.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  return {
    compute: new ModelCompute(model, layout, s),
    layout,
    fingerprint: ckpt.fingerprint,
    backend: active.name,
    backendSummary: active.summary,
    parameters,
    flops: flopsModelOf(ckpt.config, s.lora.r, targets, {
      variant: loraVariantOf(s.lora),
      dropout: s.lora.loraDropout > 0,
    }),
    memoryNote,
  };
}

// Loading a base model of any family, alone or with a PEFT adapter for evaluation or generation, every
// adapter_config field honoured or refused (src/checkpoint/adapter-support.ts). The adapter's LoRA
// variant says how it runs: as a LoRA branch (plain LoRA: the trainer's exact math) or merged into
// the base weights on the host as the tensors stream in (DoRA).
import { adapterFeatures, containersOf } from '../checkpoint/adapter-support.ts';
import type { ModelConfig } from '../checkpoint/architecture.ts';
import { loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import { adapterSettings, mergedTensors, mergePlan } from '../checkpoint/merge-adapter.ts';
import type { PeftAdapter } from '../checkpoint/peft-adapter.ts';
import type { HostTensor } from '../formats/host-tensor.ts';
import type { CausalLm, LoadOptions } from '../model/causal-lm.ts';
import { familyOf } from './registry.ts';

type Tensors = AsyncIterable<HostTensor> | Iterable<HostTensor>;

/** The base model of `config`'s family from `tensors` (HF names). */
export async function loadModel(
  config: ModelConfig,
  tensors: Tensors,
  options: LoadOptions,
): Promise<CausalLm> {
  // The one call of a family's lazy compute loader: no file the coordinator reaches makes it.
  const compute = await familyOf(config.modelType, 'config.json').loadCompute();
  return compute.loadModel(config, tensors, options);
}

/** The model with `adapter` applied (null: the base alone). `source` names the adapter in errors. */
export async function loadModelWithAdapter(
  config: ModelConfig,
  tensors: Tensors,
  adapter: PeftAdapter | null,
  source: string,
  options: LoadOptions,
): Promise<CausalLm> {
  if (adapter === null) return loadModel(config, tensors, options);
  const plan = mergePlan(config, adapter, 'inference', source); // checks every field and tensor first
  const settings = adapterSettings(
    adapter,
    adapterFeatures(adapter.config, 'inference', source, containersOf(config)),
  );
  if (loraVariantOf(settings).mergedForInference) {
    return loadModel(config, mergedTensors(tensors, plan), options);
  }
  const model = await loadModel(config, tensors, options);
  try {
    model.configureLora(settings);
    model.setLoraWeights(new Map([...adapter.tensors].map(([k, t]) => [k, t.data])));
  } catch (err) {
    model.dispose();
    throw new Error(`${source}: ${(err as Error).message}`);
  }
  return model;
}

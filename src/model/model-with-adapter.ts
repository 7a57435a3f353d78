// Loading a base model with a PEFT adapter for evaluation or generation, every adapter_config field
// honoured or refused (src/checkpoint/adapter-support.ts). The adapter's LoRA variant says how it
// runs: as a LoRA branch (plain LoRA: the trainer's exact math) or merged into the base weights on
// the host as the tensors stream in (DoRA).
import { adapterFeatures } from '../checkpoint/adapter-support.ts';
import type { MptConfig } from '../checkpoint/config.ts';
import { loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import { adapterSettings, mergedTensors, mergePlan } from '../checkpoint/merge-adapter.ts';
import type { PeftAdapter } from '../checkpoint/peft-adapter.ts';
import type { HostTensor } from '../formats/host-tensor.ts';
import { type LoadOptions, loadMptModel, type MptModel } from './mpt-model.ts';

/** The model with `adapter` applied (null: the base alone). `source` names the adapter in errors. */
export async function loadModelWithAdapter(
  config: MptConfig,
  tensors: AsyncIterable<HostTensor> | Iterable<HostTensor>,
  adapter: PeftAdapter | null,
  source: string,
  options: LoadOptions,
): Promise<MptModel> {
  if (adapter === null) return loadMptModel(config, tensors, options);
  const plan = mergePlan(config, adapter, 'inference', source); // checks every field and tensor first
  const settings = adapterSettings(adapter, adapterFeatures(adapter.config, 'inference', source));
  if (loraVariantOf(settings).mergedForInference) {
    return loadMptModel(config, mergedTensors(tensors, plan), options);
  }
  const model = await loadMptModel(config, tensors, options);
  try {
    model.configureLora(settings);
    model.setLoraWeights(new Map([...adapter.tensors].map(([k, t]) => [k, t.data])));
  } catch (err) {
    model.dispose();
    throw new Error(`${source}: ${(err as Error).message}`);
  }
  return model;
}

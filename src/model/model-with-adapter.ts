// Loading a base model with a PEFT adapter for evaluation or generation, every adapter_config field
// honoured or refused (src/checkpoint/adapter-support.ts): plain LoRA runs as a LoRA branch (the
// trainer's exact math), DoRA is merged into the base weights on the host as the tensors stream in.
import { adapterFeatures } from '../checkpoint/adapter-support.ts';
import type { MptConfig } from '../checkpoint/config.ts';
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
  const features = adapterFeatures(adapter.config, 'inference', source);
  if (features.useDora) return loadMptModel(config, mergedTensors(tensors, plan), options);
  const model = await loadMptModel(config, tensors, options);
  try {
    model.configureLora(adapterSettings(adapter, features));
    model.setLoraWeights(new Map([...adapter.tensors].map(([k, t]) => [k, t.data])));
  } catch (err) {
    model.dispose();
    throw new Error(`${source}: ${(err as Error).message}`);
  }
  return model;
}

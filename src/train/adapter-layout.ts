// The flat layout of a run's trainable state: every LoRA A and B of the model (src/checkpoint/lora-targets.ts,
// pure, no TensorFlow.js) in model order, A before B — the order PEFT saves them in — then the LoRA
// variant's own tensors of the target (DoRA: its lora_magnitude_vector [out]).
import type { ModelConfig } from '../checkpoint/architecture.ts';
import type { LoraSettings } from '../checkpoint/lora-spec.ts';
import { type LoraTarget, loraTargets } from '../checkpoint/lora-targets.ts';
import { loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import { type ParamLayout, paramLayout } from './param-layout.ts';

export function adapterLayout(
  config: ModelConfig,
  lora: LoraSettings,
): { layout: ParamLayout; targets: LoraTarget[] } {
  const targets = loraTargets(config, lora);
  const variant = loraVariantOf(lora);
  const specs = targets.flatMap((t) => [
    { name: t.aName, shape: [lora.r, t.inFeatures] },
    { name: t.bName, shape: [t.outFeatures, lora.r] },
    ...variant.extraTensors(t),
  ]);
  return { layout: paramLayout(specs), targets };
}

// The LoRA variants and the one place one is chosen from the LoRA settings. A new variant (PEFT's
// next LoraVariant) is a file beside dora.ts and one entry in VARIANTS; nothing else names it.
import type { LoraSettings } from '../lora-spec.ts';
import { DORA } from './dora.ts';
import { LORA } from './lora.ts';
import type { LoraVariant } from './types.ts';

/** The variants beyond plain LoRA, each switched on by its own LoRA setting. */
const VARIANTS: readonly LoraVariant[] = [DORA];

/** The variant `s` asks for: plain LoRA unless a variant's setting is on; two at once is an error.
 * (`among` is for tests of the rule itself.) */
export function loraVariantOf(s: LoraSettings, among: readonly LoraVariant[] = VARIANTS): LoraVariant {
  const on = among.filter((v) => v.appliesTo(s));
  if (on.length > 1) {
    throw new Error(`LoRA settings switch on ${on.map((v) => v.name).join(' and ')} at once; choose one`);
  }
  return on[0] ?? LORA;
}

export type { LoraVariant };
export { DORA, LORA };

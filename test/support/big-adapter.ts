// The layout of a large LoRA adapter (r=64 on `blocks` Wqkv of a 4096-wide model: 1M values per
// block), big enough that writing a checkpoint takes a while and SIGKILLs land inside it.
import { type ParamLayout, paramLayout } from '../../src/train/param-layout.ts';

export function bigLayout(blocks: number): ParamLayout {
  return paramLayout(
    Array.from({ length: blocks }, (_, i) => [
      { name: `base_model.model.transformer.blocks.${i}.attn.Wqkv.lora_A.weight`, shape: [64, 4096] },
      { name: `base_model.model.transformer.blocks.${i}.attn.Wqkv.lora_B.weight`, shape: [12288, 64] },
    ]).flat(),
  );
}

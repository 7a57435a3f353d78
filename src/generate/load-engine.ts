// Builds a GenerationEngine from what a user names: a base model (directory or cached Hub id, also a
// merged model written by `lora-mpt merge`), optionally a PEFT adapter directory (made by lora-mpt
// or by Python PEFT), a prompt template and the tokenizer beside the weights.

import { readPeftAdapter } from '../checkpoint/peft-adapter.ts';
import { loadPromptTemplate } from '../data/prompt-template.ts';
import { Tokenizer } from '../data/tokenizer.ts';
import { eosAndBos } from '../data/tokenizer-config.ts';
import { openCheckpoint } from '../families/checkpoint.ts';
import { loadModelWithAdapter } from '../families/load-model.ts';
import type { HubOptions } from '../hub/hf-cache.ts';
import { type HubEnv, resolveModel } from '../hub/models.ts';
import type { ComputeLayout } from '../model/backend.ts';
import { GenerationEngine } from './engine.ts';

export interface EngineSource {
  readonly baseModel: string;
  readonly loraWeights: string | null;
  readonly load8bit: boolean;
  /** '' = alpaca. */
  readonly promptTemplateName: string;
  /** tokenizer.json to use instead of the one beside the weights. */
  readonly tokenizer: string | null;
  readonly layout: ComputeLayout;
  readonly hubEnv: HubEnv;
  readonly hubOptions: HubOptions;
  /** Load progress (LoadOptions.onTensor). */
  readonly onTensor?: (loaded: number, expected: number) => void;
}

/** The EOS finetune appended (eosAndBos); null (stop only at max_new_tokens) when the tokenizer names none. */
function eosOf(tokenizerPath: string, tokenizer: Tokenizer): number | null {
  try {
    return eosAndBos(tokenizerPath, tokenizer).eos;
  } catch {
    return null;
  }
}

export async function loadEngine(s: EngineSource): Promise<GenerationEngine> {
  const resolved = await resolveModel(s.baseModel, s.hubEnv, 'main', s.hubOptions);
  const tokenizerPath = s.tokenizer ?? resolved.tokenizerJson;
  if (tokenizerPath === null) {
    throw new Error(
      `--base_model ${s.baseModel}: no tokenizer.json beside the weights; pass --tokenizer PATH`,
    );
  }
  const tokenizer = Tokenizer.fromFile(tokenizerPath);
  const template = loadPromptTemplate(s.promptTemplateName);
  const adapter = s.loraWeights === null ? null : await readPeftAdapter(s.loraWeights);
  const ckpt = await openCheckpoint(resolved.dir);
  const model = await loadModelWithAdapter(
    ckpt.config,
    ckpt.tensors(),
    adapter,
    `--lora_weights ${s.loraWeights}`,
    {
      layout: s.layout,
      load8bit: s.load8bit,
      ...(s.onTensor ? { onTensor: s.onTensor } : {}),
    },
  );
  const name = s.loraWeights === null ? s.baseModel : `${s.baseModel} + ${s.loraWeights}`;
  return new GenerationEngine({
    model,
    tokenizer,
    template,
    eosTokenId: eosOf(tokenizerPath, tokenizer),
    name,
  });
}

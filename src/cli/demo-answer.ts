// The demo's last act: ask the adapter it just trained one Alpaca instruction through the engine
// `lora-mpt generate` serves (generate.py's decoding defaults), print the answer, and say plainly why
// it is nonsense: the base model's weights are random.
import { homedir } from 'node:os';
import { TRANSFORMERS_DEFAULTS } from '../generate/decode.ts';
import { loadEngine } from '../generate/load-engine.ts';
import { hubOptionsFromEnv } from '../hub/hf-cache.ts';
import { type BackendChoice, initBackend } from '../model/backend.ts';
import { PAGE_DEFAULTS } from '../serve/requests.ts';

export const DEMO_INSTRUCTION = 'Tell me about alpacas.';

export async function askAdapter(o: {
  readonly baseModel: string;
  readonly adapter: string;
  readonly backend: string;
}): Promise<string> {
  const backend = await initBackend(o.backend as BackendChoice);
  const engine = await loadEngine({
    baseModel: o.baseModel,
    loraWeights: o.adapter,
    load8bit: false,
    promptTemplateName: '',
    tokenizer: null,
    layout: backend.layout,
    hubEnv: { ...process.env, HOME: homedir() },
    hubOptions: hubOptionsFromEnv(process.env, homedir()),
  });
  try {
    console.log(
      `demo: asking the adapter one Alpaca instruction through lora-mpt generate's engine (generate.py's defaults: ${PAGE_DEFAULTS.num_beams} beams, up to ${PAGE_DEFAULTS.max_new_tokens} new tokens)`,
    );
    console.log(`  Instruction: ${DEMO_INSTRUCTION}`);
    const result = await engine.generate(
      { kind: 'instruction', instruction: DEMO_INSTRUCTION, input: '' },
      {
        maxNewTokens: PAGE_DEFAULTS.max_new_tokens,
        numBeams: PAGE_DEFAULTS.num_beams,
        doSample: false,
        temperature: 1,
        topK: PAGE_DEFAULTS.top_k,
        topP: PAGE_DEFAULTS.top_p,
        seed: null,
        ...TRANSFORMERS_DEFAULTS,
      },
    );
    console.log(`  Answer: ${JSON.stringify(result.text)}`);
    console.log(
      'demo: that answer is nonsense, and must be: the base model has RANDOM weights (it never learned\n' +
        '  language), and a few dozen LoRA steps cannot teach it. The machinery is what the demo shows; with\n' +
        '  mosaicml/mpt-7b-instruct as --base_model the same commands give real answers.',
    );
    console.log(
      `demo: talk to it yourself: npx lora-mpt generate --base_model ${o.baseModel} --lora_weights ${o.adapter}`,
    );
    return result.text;
  } finally {
    engine.dispose();
  }
}

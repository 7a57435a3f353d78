// `npm run bench -- memory-table`: what fits where. MPT-7B with LoRA r=8 on Wqkv and Llama-3-8B with
// LoRA r=8 on q_proj, v_proj (PEFT's defaults for each), planned by the same
// code as the check every command runs before loading (src/model/memory-plan.ts), against GPUs of
// 24, 40, 80 and 141 GiB (the batched layout, as on tensorflow and tfjs-node-gpu): the GPU holds the
// tensors, the host the JavaScript side; a CPU backend needs both in RAM. No model is loaded.
import type { ModelConfig } from '../src/checkpoint/architecture.ts';
import { parseLlamaConfig } from '../src/families/llama/config.ts';
import { LLAMA_NAMED_CONFIGS } from '../src/families/llama/named-configs.ts';
import { parseMptConfig } from '../src/families/mpt/config.ts';
import { GIB, gib, type MemorySettings, planMemory } from '../src/model/memory-plan.ts';
import { MPT_7B_CONFIG } from './support/mpt-7b-config.ts';

const GPUS = [24, 40, 80, 141];

export async function run(): Promise<void> {
  console.log('MPT-7B, LoRA r=8 on [Wqkv]\n');
  table(parseMptConfig(MPT_7B_CONFIG, 'MPT-7B config.json'), ['Wqkv']);
  console.log('\nLlama-3-8B, LoRA r=8 on [q_proj, v_proj]\n');
  table(parseLlamaConfig(LLAMA_NAMED_CONFIGS['llama-3-8b'], 'llama-3-8b'), ['q_proj', 'v_proj']);
}

function table(config: ModelConfig, targetModules: readonly string[]): void {
  const base = {
    layout: 'batched',
    training: true,
    lora: { r: 8, loraAlpha: 16, loraDropout: 0.05, targetModules },
  } as const;
  const gpus = GPUS.map((g) => `${g} GiB GPU`).join(' | ');
  console.log(
    `| weights | checkpointing | micro-batch x cutoff | activations + working, GiB | GPU memory, GiB | host memory, GiB | ${gpus} | CPU backend: RAM, GiB |`,
  );
  console.log(`|---|---|---|---|---|---|${GPUS.map(() => '---').join('|')}|---|`);
  for (const load8bit of [false, true]) {
    for (const gradientCheckpointing of [false, true]) {
      for (const [mb, t] of [
        [1, 256],
        [4, 256],
        [4, 512],
        [16, 512],
        [4, 2048],
        [16, 2048],
      ] as const) {
        const s: MemorySettings = { ...base, load8bit, gradientCheckpointing, microBatchSize: mb, seqLen: t };
        const p = planMemory(config, s);
        const fits = GPUS.map((g) => (p.device <= g * GIB ? 'fits' : '—'));
        console.log(
          `| ${load8bit ? 'int8' : 'f32'} | ${gradientCheckpointing ? 'on' : 'off'} | ${mb} x ${t} | ${gib(p.activations + p.working)} | ${gib(p.device)} | ${gib(p.host)} | ${fits.join(' | ')} | ${gib(p.total)} |`,
        );
      }
    }
  }
}

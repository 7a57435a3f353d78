// A process that does nothing but write training checkpoints of a large adapter, as fast as it can,
// with the product's own code (saveTrainingCheckpoint: temporary dir, fsync, rename; then pruning to
// 2 as save_total_limit does), for the SIGKILL loop in test/train/checkpoint-kill.test.ts.
// Usage: node --import tsx test/support/checkpoint-writer.ts OUTPUT_DIR BLOCKS
import { newLoraConfig } from '../../src/checkpoint/peft-adapter.ts';
import { listCheckpoints, pruneCheckpoints } from '../../src/train/checkpoint-dirs.ts';
import { AdapterReplica } from '../../src/train/replica.ts';
import { saveTrainingCheckpoint } from '../../src/train/training-checkpoint.ts';
import { bigLayout } from './big-adapter.ts';

const [outputDir, blocksArg] = process.argv.slice(2) as [string, string];
const layout = bigLayout(Number(blocksArg));
const replica = new AdapterReplica(layout, new Float32Array(layout.size).fill(0.25));
const config = newLoraConfig({ r: 64, loraAlpha: 16, loraDropout: 0, targetModules: ['Wqkv'] }, 'x');
let step = ((await listCheckpoints(outputDir)).at(-1)?.step ?? 0) + 1;
process.stdout.write('ready\n');
for (;;) {
  replica.state.params.fill(step);
  replica.state.step = step;
  await saveTrainingCheckpoint(outputDir, replica, config, {
    global_step: step,
    epoch: 0,
    max_steps: 1_000_000,
    best_metric: null,
    best_model_checkpoint: null,
    log_history: [],
    lora_mpt: {
      run_id: 'kill',
      plan_fingerprint: 'plan',
      dataset_fingerprint: 'data',
      seed: 1,
      optimizer_steps: step,
    },
  });
  await pruneCheckpoints(outputDir, 2);
  process.stdout.write(`saved ${step}\n`);
  step++;
}

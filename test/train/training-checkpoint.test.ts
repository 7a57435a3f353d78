// What loading a training checkpoint refuses (issue #23): a non-finite weight or first moment, a
// negative or non-finite second moment, and tensors that no longer match the checksum the save
// recorded — each naming the file and the tensor; and what it accepts (±FLT_MAX, -0, an older
// checkpoint without a checksum).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { newLoraConfig } from '../../src/checkpoint/peft-adapter.ts';
import { paramLayout } from '../../src/train/param-layout.ts';
import { AdapterReplica } from '../../src/train/replica.ts';
import {
  loadTrainingCheckpoint,
  saveTrainingCheckpoint,
  TRAINER_STATE_FILE,
  type TrainerState,
} from '../../src/train/training-checkpoint.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lora-mpt-ckpt-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const A = 'base_model.model.transformer.blocks.0.attn.Wqkv.lora_A.weight';
const B = 'base_model.model.transformer.blocks.0.attn.Wqkv.lora_B.weight';
const layout = paramLayout([
  { name: A, shape: [1, 2] },
  { name: B, shape: [3, 1] },
]);
const config = newLoraConfig({ r: 1, loraAlpha: 1, loraDropout: 0, targetModules: ['Wqkv'] }, 'base');
const FLT_MAX = 3.4028234663852886e38;
let n = 0;

async function saved(params: number[], expAvg: number[], expAvgSq: number[]): Promise<string> {
  const replica = new AdapterReplica(layout, Float32Array.from(params));
  replica.restore({
    params: Float32Array.from(params),
    expAvg: Float32Array.from(expAvg),
    expAvgSq: Float32Array.from(expAvgSq),
    step: 1,
  });
  const state: TrainerState = {
    global_step: 1,
    epoch: 0,
    max_steps: 2,
    best_metric: null,
    best_model_checkpoint: null,
    log_history: [],
    lora_mpt: { run_id: 'r', plan_fingerprint: 'p', dataset_fingerprint: 'd', seed: 1, optimizer_steps: 1 },
  };
  return saveTrainingCheckpoint(join(tmp, `out-${n++}`), replica, config, state);
}

const good = [0.5, -0.25, 1, 2, -3];
describe('loading a training checkpoint', () => {
  it('round-trips one it saved, boundary values included, and records a checksum', async () => {
    const dir = await saved([FLT_MAX, -FLT_MAX, -0, 1e-45, 2], good, [0, FLT_MAX, 1, 2, 3]);
    const ck = await loadTrainingCheckpoint(dir, layout);
    assert.deepEqual(
      [...ck.params],
      [FLT_MAX, -FLT_MAX, -0, 1e-45, 2].map((x) => Math.fround(x)),
    );
    assert.match(String(ck.state.lora_mpt.state_checksum), /^[0-9a-f]{32}$/);
  });

  it('refuses NaN, +Inf and -Inf in the weights or first moments and negative second moments, naming file and tensor', async () => {
    const cases: [number[], number[], number[], RegExp][] = [
      [
        [Number.NaN, 0, 0, 0, 0],
        good,
        good.map(Math.abs),
        /adapter_model\.safetensors: .*lora_A\.weight holds NaN at element 0/,
      ],
      [
        [0, 0, 0, 0, Number.POSITIVE_INFINITY],
        good,
        good.map(Math.abs),
        /adapter_model\.safetensors: .*lora_B\.weight holds Infinity at element 2/,
      ],
      [
        good,
        [0, Number.NEGATIVE_INFINITY, 0, 0, 0],
        good.map(Math.abs),
        /optimizer\.safetensors \(exp_avg\): .*lora_A\.weight holds -Infinity at element 1/,
      ],
      [
        good,
        good,
        [0, 0, -1e-30, 0, 0],
        /optimizer\.safetensors \(exp_avg_sq\): .*lora_B\.weight holds -1\.0+\d*e-30 at element 0/,
      ],
    ];
    for (const [p, m, v, error] of cases) {
      const dir = await saved(p, m, v);
      await assert.rejects(loadTrainingCheckpoint(dir, layout), error);
    }
  });

  it('refuses tensors changed after the save (a finite value), and accepts a checkpoint that records no checksum', async () => {
    const dir = await saved(good, good, good.map(Math.abs));
    const file = join(dir, 'adapter_model.safetensors');
    const bytes = readFileSync(file);
    const last = bytes.length - 1; // the last value's sign-and-exponent byte: still finite after a flip
    bytes[last] = (bytes[last] as number) ^ 0x01;
    writeFileSync(file, bytes);
    await assert.rejects(
      loadTrainingCheckpoint(dir, layout),
      /do not match the checksum .*trainer_state\.json records/,
    );
    const statePath = join(dir, TRAINER_STATE_FILE);
    const state = JSON.parse(readFileSync(statePath, 'utf8'));
    delete state.lora_mpt.state_checksum;
    writeFileSync(statePath, JSON.stringify(state));
    const ck = await loadTrainingCheckpoint(dir, layout);
    assert.notEqual(ck.params[4], Math.fround(-3), 'the older format loads what the file holds');
  });
});

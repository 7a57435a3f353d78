import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

const flags = (run: TinyRun, out: string) => [
  'finetune',
  ...runArgs(run, out, {
    batch_size: 8,
    micro_batch_size: 4,
    max_steps: 6,
    cutoff_len: 64,
    val_set_size: 8,
    eval_steps: 3,
    save_steps: 2,
    save_total_limit: 2,
    warmup_steps: 2,
    learning_rate: '1e-2',
    lora_dropout: 0.1,
    lora_target_modules: '[Wqkv,down_proj]',
  }),
];

describe('lora-mpt finetune resume', () => {
  let run: TinyRun;
  before(async () => {
    run = await tinyRun();
  });
  after(() => run?.cleanup());

  it('ends with the same adapter after SIGKILL at a checkpoint and --resume_from_checkpoint as without', async () => {
    const whole = startLoraMpt('finetune (whole)', flags(run, join(run.dir, 'whole')));
    assert.equal(await whole.exited(), 0, whole.output());
    const written = whole.events().find((e) => e.event === 'adapter_written');
    assert.match(String(written?.path), /adapter_model\.safetensors$/);

    const killed = startLoraMpt('finetune (killed)', flags(run, join(run.dir, 'resumed')));
    await killed.waitForEvent('checkpoint_saved', (e) => /checkpoint-4$/.test(String(e.path)), {
      ms: 120_000,
    });
    await killed.kill('SIGKILL');
    const resumed = startLoraMpt('finetune (resumed)', [
      ...flags(run, join(run.dir, 'resumed')),
      '--resume_from_checkpoint',
      'latest',
    ]);
    assert.equal(await resumed.exited(), 0, resumed.output());
    const resumedAt = resumed.events().find((e) => e.event === 'run_resumed');
    assert.match(String(resumedAt?.from), /checkpoint-4$/);
    assert.equal(resumedAt?.step, 4);

    const a = await readPeftAdapter(join(run.dir, 'whole'));
    const b = await readPeftAdapter(join(run.dir, 'resumed'));
    assert.deepEqual([...a.tensors.keys()], [...b.tensors.keys()]);
    for (const [name, t] of a.tensors) {
      assert.deepEqual(Buffer.from(b.tensors.get(name)!.data.buffer), Buffer.from(t.data.buffer), name);
    }
  });
});

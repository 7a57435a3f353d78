// Resume for a Llama, held to MPT's standard (finetune-resume.test.ts): a run SIGKILLed once its
// checkpoint-4 is saved and resumed with --resume_from_checkpoint latest ends with the adapter of
// the run that was never stopped, bit for bit. The tiny random Llama has GQA (4 query, 2 key/value
// heads) and the Llama 2 fixture tokenizer with its tokenizer_config.json (EOS </s>).
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { writeRandomLlama } from '../../src/families/llama/random-checkpoint.ts';
import { FIXTURES } from '../data/paths.ts';
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
    lora_target_modules: '[q_proj,k_proj,down_proj]',
  }),
];

describe('lora-mpt finetune resume, Llama', () => {
  let run: TinyRun;
  before(async () => {
    const base = await tinyRun([0, 80]);
    const model = join(base.dir, 'llama');
    await writeRandomLlama(model, {
      dModel: 32,
      nHeads: 4,
      nKvHeads: 2,
      nLayers: 2,
      vocabSize: 4000,
      maxSeqLen: 128,
      seed: 5,
      initStd: 0.2,
    });
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      copyFileSync(join(FIXTURES, 'llama-tok/llama2', f), join(model, f));
    run = { ...base, model };
  });
  after(() => run?.cleanup());

  it('ends with the same adapter after SIGKILL at a checkpoint and --resume_from_checkpoint as without', async () => {
    const whole = startLoraMpt('finetune (whole)', flags(run, join(run.dir, 'whole')));
    assert.equal(await whole.exited(), 0, whole.output());
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
    assert.equal(a.tensors.size, 2 * 3 * 2); // 2 layers x 3 modules x (A, B)
    for (const [name, t] of a.tensors)
      assert.deepEqual(Buffer.from(b.tensors.get(name)!.data.buffer), Buffer.from(t.data.buffer), name);
  });
});

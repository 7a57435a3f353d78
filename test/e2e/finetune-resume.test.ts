import assert from 'node:assert/strict';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readPeftAdapter, writePeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
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

  const sameAdapter = async (dirA: string, dirB: string) => {
    const a = await readPeftAdapter(dirA);
    const b = await readPeftAdapter(dirB);
    assert.deepEqual([...a.tensors.keys()], [...b.tensors.keys()]);
    for (const [name, t] of a.tensors) {
      assert.deepEqual(Buffer.from(b.tensors.get(name)!.data.buffer), Buffer.from(t.data.buffer), name);
    }
  };

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

    await sameAdapter(join(run.dir, 'whole'), join(run.dir, 'resumed'));
  });

  it('skips unreadable newest checkpoints, saying which file and why, and resumes from the newest valid one', async () => {
    // The whole run's checkpoints 4 and 6 (save_total_limit 2); 6 damaged, an empty 8 beside them.
    const out = join(run.dir, 'damaged');
    for (const c of ['checkpoint-4', 'checkpoint-6'])
      cpSync(join(run.dir, 'whole', c), join(out, c), { recursive: true });
    writeFileSync(join(out, 'checkpoint-6', 'trainer_state.json'), '{"global_step": 6, "log_hist');
    mkdirSync(join(out, 'checkpoint-8'));
    const resumed = startLoraMpt('finetune (damaged)', [
      ...flags(run, out),
      '--resume_from_checkpoint',
      'latest',
    ]);
    assert.equal(await resumed.exited(), 0, resumed.output());
    const skipped = resumed.events().filter((e) => e.event === 'checkpoint_skipped');
    assert.deepEqual(
      skipped.map((e) => /checkpoint-\d+$/.exec(String(e.path))?.[0]),
      ['checkpoint-8', 'checkpoint-6'],
    );
    for (const e of skipped)
      assert.match(String(e.why), /checkpoint-\d+\/trainer_state\.json/, 'names the file');
    const from = resumed.events().find((e) => e.event === 'run_resumed');
    assert.match(String(from?.from), /checkpoint-4$/);
    await sameAdapter(join(run.dir, 'whole'), out);
    rmSync(out, { recursive: true, force: true });
  });

  it('skips a newest checkpoint with a NaN or a value changed after the save, naming why, and resumes from the one before', async () => {
    // PEFT's own file rewritten with one value changed: NaN (refused by the finiteness check) or a
    // finite nudge (refused by the checksum trainer_state.json records).
    for (const [name, value, why] of [
      ['nan', Number.NaN, /checkpoint-6\/adapter_model\.safetensors: \S+ holds NaN at element 0/],
      ['nudged', 0.5, /checkpoint-6: its tensors do not match the checksum .*trainer_state\.json records/],
    ] as const) {
      const out = join(run.dir, `bad-${name}`);
      for (const c of ['checkpoint-4', 'checkpoint-6'])
        cpSync(join(run.dir, 'whole', c), join(out, c), { recursive: true });
      const adapter = await readPeftAdapter(join(out, 'checkpoint-6'));
      const [first] = adapter.tensors.values();
      first!.data[0] = value;
      await writePeftAdapter(join(out, 'checkpoint-6'), adapter);
      // Kept aside: the resumed run below saves a good checkpoint-6 over the bad one.
      const bad = join(run.dir, `bad-${name}-kept`, 'checkpoint-6');
      cpSync(join(out, 'checkpoint-6'), bad, { recursive: true });
      const resumed = startLoraMpt(`finetune (${name})`, [
        ...flags(run, out),
        '--resume_from_checkpoint',
        'latest',
      ]);
      assert.equal(await resumed.exited(), 0, resumed.output());
      const skipped = resumed.events().filter((e) => e.event === 'checkpoint_skipped');
      assert.deepEqual(
        skipped.map((e) => /checkpoint-\d+$/.exec(String(e.path))?.[0]),
        ['checkpoint-6'],
      );
      assert.match(String(skipped[0]?.why), why);
      assert.match(String(resumed.events().find((e) => e.event === 'run_resumed')?.from), /checkpoint-4$/);
      await sameAdapter(join(run.dir, 'whole'), out);
      if (name === 'nan') {
        // Named explicitly, the bad checkpoint is an error naming its file, not a silent start.
        const exact = startLoraMpt('finetune (exact)', [
          ...flags(run, join(run.dir, 'exact')),
          '--resume_from_checkpoint',
          bad,
        ]);
        assert.notEqual(await exact.exited(), 0, exact.output());
        assert.match(exact.output(), /checkpoint-6\/adapter_model\.safetensors: \S+ holds NaN at element 0/);
      }
      rmSync(out, { recursive: true, force: true });
    }
  });
});

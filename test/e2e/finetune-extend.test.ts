// A finished `lora-mpt finetune` run extended from its last checkpoint with a larger --max_steps (the
// same data and flags, a longer schedule), run again unchanged (exits at once), refused with any other
// plan flag changed (the message names the flag and both values); an adapter resumed takes its LoRA
// settings from its adapter_config.json, and a conflicting LoRA flag is refused naming both values;
// rsLoRA (--use_rslora) trains with alpha/sqrt(r), written as PEFT's use_rslora and resumed as such.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { linearWarmupLr } from '../../src/train/lr-schedule.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

const base = {
  batch_size: 8,
  micro_batch_size: 4,
  cutoff_len: 48,
  val_set_size: 0,
  save_steps: 100,
  warmup_steps: 1,
  learning_rate: '1e-2',
  lora_r: 4,
  lora_alpha: 8.5,
  lora_target_modules: '[Wqkv,out_proj]',
};

async function finetune(
  name: string,
  run: TinyRun,
  out: string,
  flags: Record<string, string | number | boolean>,
) {
  const p = startLoraMpt(name, ['finetune', ...runArgs(run, out, flags)]);
  const code = await p.exited();
  return { code, p };
}

describe('extending and resuming finetune runs', () => {
  let run: TinyRun;
  before(async () => {
    run = await tinyRun([0, 48]);
  });
  after(() => run?.cleanup());

  it('extends a finished run with a larger --max_steps from its last checkpoint', async () => {
    const out = join(run.dir, 'extend');
    const first = await finetune('first', run, out, { ...base, max_steps: 2 });
    assert.equal(first.code, 0, first.p.output());

    const again = await finetune('again', run, out, {
      ...base,
      max_steps: 2,
      resume_from_checkpoint: 'latest',
    });
    assert.equal(again.code, 0, again.p.output());
    assert.ok(again.p.events().some((e) => e.event === 'run_already_finished' && e.step === 2));

    const longer = await finetune('longer', run, out, {
      ...base,
      max_steps: 4,
      resume_from_checkpoint: 'latest',
    });
    assert.equal(longer.code, 0, longer.p.output());
    const resumed = longer.p.events().find((e) => e.event === 'run_resumed');
    assert.equal(resumed?.step, 2);
    assert.equal(resumed?.schedule_changed, '--max_steps 4 (was 2)');
    const steps = longer.p
      .events()
      .filter((e) => e.event === 'step_committed')
      .map((e) => e.step);
    assert.deepEqual(steps, [3, 4]);
    assert.ok(longer.p.events().some((e) => e.event === 'run_finished' && e.step === 4));
    // The continued steps follow the new schedule's learning rate (linear decay over 4 steps).
    const log = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step?: number; learning_rate?: number });
    const lr3 = log.filter((l) => l.step === 3 && l.learning_rate !== undefined).at(-1)?.learning_rate;
    assert.ok(lr3 !== undefined, 'step 3 is in metrics.jsonl');
    assert.ok(Math.abs(lr3 - linearWarmupLr(1e-2, 2, 1, 4)) < 1e-12, `lr at step 3: ${lr3}`);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint-4', 'trainer_state.json'), 'utf8'));
    assert.equal(state.global_step, 4);
  });

  it('refuses to continue with another plan flag, naming it with both values', async () => {
    const out = join(run.dir, 'extend');
    const other = await finetune('other', run, out, {
      ...base,
      batch_size: 16,
      max_steps: 6,
      resume_from_checkpoint: 'latest',
    });
    assert.equal(other.code, 1);
    assert.match(other.p.output(), /cannot continue as this run: --batch_size was 8, now 16/);
  });

  it('takes r, alpha, dropout and targets from the resumed adapter; a conflicting flag is an error', async () => {
    const from = join(run.dir, 'extend'); // its adapter: r 4, alpha 8.5, [Wqkv, out_proj], dropout 0.05
    const out = join(run.dir, 'adopted');
    const { lora_r: _r, lora_alpha: _a, lora_target_modules: _t, ...noLora } = base;
    const adopted = await finetune('adopted', run, out, {
      ...noLora,
      max_steps: 1,
      resume_from_checkpoint: from,
    });
    assert.equal(adopted.code, 0, adopted.p.output());
    const config = (await readPeftAdapter(out)).config.lora;
    assert.equal(config.r, 4);
    assert.equal(config.loraAlpha, 8.5);
    assert.equal(config.loraDropout, 0.05);
    assert.deepEqual([...(config.targetModules as string[])].sort(), ['Wqkv', 'out_proj']);

    const clash = await finetune('clash', run, join(run.dir, 'clash'), {
      ...noLora,
      max_steps: 1,
      lora_r: 16,
      resume_from_checkpoint: from,
    });
    assert.equal(clash.code, 2);
    assert.match(clash.p.output(), /--lora_r 16 conflicts with r 4 in .*adapter_config\.json/);
  });

  it('trains rsLoRA with alpha/sqrt(r): the same adapter as plain LoRA whose alpha/r is that number', async () => {
    // r 4: rsLoRA alpha 8 scales by 8/sqrt(4) = 4, plain LoRA alpha 16 by 16/4 = 4 (both exact), so the
    // two runs must train bit-identical A and B; PEFT's rsLoRA scale itself is checked by eval
    // against PEFT's losses (test/cli/eval.test.ts, fixture lora-rslora-h8).
    const { lora_alpha: _a, ...noAlpha } = base;
    const rs = join(run.dir, 'rslora');
    const rsRun = await finetune('rslora', run, rs, {
      ...noAlpha,
      lora_alpha: 8,
      use_rslora: true,
      max_steps: 2,
    });
    assert.equal(rsRun.code, 0, rsRun.p.output());
    const plain = join(run.dir, 'plain16');
    const plainRun = await finetune('plain16', run, plain, { ...noAlpha, lora_alpha: 16, max_steps: 2 });
    assert.equal(plainRun.code, 0, plainRun.p.output());
    const a = await readPeftAdapter(rs);
    const b = await readPeftAdapter(plain);
    assert.equal(a.config.lora.useRslora, true);
    assert.equal(a.config.lora.loraAlpha, 8);
    assert.equal(b.config.lora.useRslora, false);
    assert.equal(JSON.parse(readFileSync(join(rs, 'adapter_config.json'), 'utf8')).use_rslora, true);
    assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
    let moved = false;
    for (const [name, t] of a.tensors) {
      const other = b.tensors.get(name)?.data as Float32Array;
      assert.deepEqual(t.data, other, name);
      moved ||= name.includes('lora_B') && t.data.some((v) => v !== 0);
    }
    assert.ok(moved, 'training changed lora_B');

    // Resumed without LoRA flags, the adapter stays rsLoRA; a contrary flag names both values.
    const more = await finetune('rslora-more', run, join(run.dir, 'rslora-more'), {
      ...noAlpha,
      max_steps: 1,
      resume_from_checkpoint: rs,
    });
    assert.equal(more.code, 0, more.p.output());
    assert.equal((await readPeftAdapter(join(run.dir, 'rslora-more'))).config.lora.useRslora, true);
    const clash = await finetune('rslora-clash', run, join(run.dir, 'rslora-clash'), {
      ...noAlpha,
      max_steps: 1,
      use_rslora: false,
      resume_from_checkpoint: rs,
    });
    assert.equal(clash.code, 2);
    assert.match(
      clash.p.output(),
      /--use_rslora false conflicts with use_rslora true in .*adapter_config\.json/,
    );
  });
});

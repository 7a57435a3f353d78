import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StepTimes } from '../../src/coordinator/rehearsal-clock.ts';
import type { RehearsalSummary } from '../../src/coordinator/rehearsal-summary.ts';
import { mptConfigJson } from '../../src/families/mpt/random-checkpoint.ts';
import { startDistributedRun } from '../support/distributed-run.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import type { LoraEvent } from '../support/processes.ts';
import { startLoraMpt } from '../support/processes.ts';
import { runArgs, SHARED_TOKENIZER, type TinyRun, tinyRun } from '../support/tiny-run.ts';

// A rehearsal is a real run of synthetic workers: the coordinator times each step from its events
// and predicts the planned run. The modelled GPU (0.1 TFLOP/s at MFU 0.5) makes a micro-batch of
// this tiny config take tens of milliseconds, so compute is a real part of each step.
const MODELLED = [
  '--backend',
  'synthetic',
  '--gpu_profile',
  't4',
  '--peak_tflops',
  '0.1',
  '--gpu_mfu',
  '0.5',
];
const MAX_STEPS = 4;

const training = (model: string, run: TinyRun, out: string) =>
  runArgs({ model, data: run.data }, out, {
    tokenizer: SHARED_TOKENIZER,
    batch_size: 8,
    micro_batch_size: 2,
    max_steps: MAX_STEPS,
    num_epochs: 3,
    cutoff_len: 48,
    val_set_size: 4,
    eval_steps: 2,
    save_steps: 2,
    group_by_length: true,
  });

type Rehearsal = RehearsalSummary & { readonly plan: { readonly stepsPerEpoch: number } };

const sum = (s: StepTimes) =>
  s.computeSeconds + s.waitSeconds + s.allReduceSeconds + s.commitSeconds + s.evalSeconds;
const near = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tolerance ${tol})`);
const ms = (e: LoraEvent) => Date.parse(String(e.time));

/** What every rehearsal.json must satisfy, whoever ran it. */
function checkArithmetic(r: Rehearsal, dataReady: LoraEvent, gpus: number): void {
  assert.equal(r.measured.length, MAX_STEPS);
  for (const s of r.measured) {
    near(sum(s), s.totalSeconds, 1e-9, `step ${s.step}: the parts add up to its wall time`);
    assert.ok(s.computeSeconds > 0, `step ${s.step}: synthetic workers took modelled time`);
    assert.ok(s.waitSeconds >= 0 && s.allReduceSeconds >= 0 && s.commitSeconds >= 0);
    assert.equal(s.workers, gpus);
  }
  // Times are in ms: one step's all-reduce may round to 0, the run's cannot (NATS between processes).
  assert.ok(r.measured.reduce((a, s) => a + s.allReduceSeconds, 0) > 0, 'the all-reduces were timed');
  const p = r.predicted;
  near(
    p.computeSeconds + p.waitSeconds + p.allReduceSeconds + p.commitSeconds,
    p.stepSeconds,
    1e-9,
    'predicted',
  );
  assert.deepEqual(r.predictedFrom, [1, 2, 3], 'the first step (warm-up) is left out');
  const mean = (f: (s: StepTimes) => number) => r.measured.slice(1).reduce((a, s) => a + f(s), 0) / 3;
  near(
    p.stepSeconds,
    mean((s) => s.totalSeconds - s.evalSeconds),
    1e-9,
    'predicted step = mean measured',
  );
  // The planned run is the data plan's epochs, not the rehearsal's --max_steps.
  assert.equal(r.plan.stepsPerEpoch, dataReady.steps_per_epoch);
  assert.equal(r.plannedSteps, 3 * Number(dataReady.steps_per_epoch));
  assert.ok(p.evalSeconds > 0, 'evaluations ran (after steps 2 and 4) and were timed');
  const evals = Math.floor(r.plannedSteps / 2) + (r.plannedSteps % 2);
  assert.equal(r.plannedEvals, evals);
  near(
    r.gpuHours,
    (gpus * (r.plannedSteps * p.stepSeconds + evals * p.evalSeconds)) / 3600,
    1e-12,
    'GPU-hours',
  );
}

describe('rehearsal: synthetic workers predict the planned run', () => {
  let run: TinyRun;
  let nats: NatsServer;
  let model: string;
  before(async () => {
    run = await tinyRun([200, 300]);
    const dir = join(run.dir, 'config-only');
    mkdirSync(dir);
    const config = mptConfigJson({ dModel: 256, nHeads: 8, nLayers: 4, vocabSize: 50432, maxSeqLen: 2048 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    model = `synthetic:${join(dir, 'config.json')}`;
    nats = await startNats({ maxPayload: 64 * 1024 });
  });
  after(async () => {
    await nats?.stop();
    run?.cleanup();
  });

  it('times each step from the coordinator events: parts add up to the step, GPU-hours by the formula', async (t) => {
    const out = join(run.dir, 'workers');
    const d = await startDistributedRun({
      natsUrl: nats.url,
      trainingFlags: training(model, run, out),
      workers: ['w0', 'w1'],
      workerFlags: MODELLED,
      coordinatorFlags: ['--log_level', 'debug'],
    });
    try {
      assert.equal(await d.coordinator.exited(), 0, d.coordinator.output());
      for (const w of d.workers) assert.equal(await w.exited(), 0, w.output());
    } finally {
      await d.stop();
    }
    const events = d.coordinator.events();
    const printed = events.find((e) => e.event === 'rehearsal_summary');
    assert.ok(printed, 'the coordinator printed the summary');
    assert.equal(printed.path, join(out, 'rehearsal.json'));
    const r = JSON.parse(readFileSync(join(out, 'rehearsal.json'), 'utf8')) as Rehearsal;
    assert.equal(printed.gpu_hours, r.gpuHours);
    checkArithmetic(r, events.find((e) => e.event === 'data_ready')!, 2);
    // Independently of the summary's own clock: a step runs from its first micro-batch dealt to the
    // next step's, by the times in the coordinator's log (ms; the log's stamp and the tap's are
    // taken in the same call, so they differ by a rounding, or a pause of the process).
    const firstDeal = (step: number) =>
      ms(events.find((e) => e.event === 'microbatches_dealt' && e.kind === 'train' && e.step === step)!);
    for (const s of r.measured.slice(0, -1)) {
      near(
        s.totalSeconds,
        (firstDeal(s.step + 1) - firstDeal(s.step)) / 1000,
        0.02,
        `step ${s.step} wall time`,
      );
    }
    t.diagnostic(String(printed.msg));
  });

  it('is what `launch --backend synthetic` prints at the end', async () => {
    const out = join(run.dir, 'launched');
    const launch = startLoraMpt(
      'launch',
      ['launch', '--nproc_per_node', '2', ...training(model, run, out), ...MODELLED, '--log_format', 'json'],
      { CUDA_VISIBLE_DEVICES: '' },
    );
    assert.equal(await launch.exited(), 0, launch.output());
    const events = launch.events();
    const printed = events.filter((e) => e.event === 'rehearsal_summary');
    assert.equal(printed.length, 1, 'one summary, from the coordinator');
    assert.ok(existsSync(join(out, 'rehearsal.json')));
    const r = JSON.parse(readFileSync(join(out, 'rehearsal.json'), 'utf8')) as Rehearsal;
    checkArithmetic(r, events.find((e) => e.event === 'data_ready')!, 2);
  });
});

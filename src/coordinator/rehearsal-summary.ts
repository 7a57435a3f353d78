// A rehearsal's answer (docs/scale.md#rehearsal): the step time a planned run would have, where it
// goes, and the GPU-hours it would take, from the steps a run of synthetic workers measured
// (rehearsal-clock.ts). Compute is modelled (the workers take their GPU profile's time); the wait,
// the all-reduce, the commit and evaluation are measured on the real coordinator, NATS and network.
//   GPU-hours = GPUs × (planned steps × predicted step + planned evaluations × evaluation) / 3600

import type { StepTimes } from './rehearsal-clock.ts';
import { evalDue } from './step-driver.ts';

/** The real run the rehearsal stands for: its whole data plan, whatever --max_steps cut. */
export interface PlannedRun {
  readonly numEpochs: number;
  readonly stepsPerEpoch: number;
  readonly evalSteps: number;
  /** Micro-batches of the validation set (0: no evaluation). */
  readonly evalMicroBatches: number;
}

export interface RehearsalSummary {
  /** Steps measured in this process; the first is left out of the prediction when others exist. */
  readonly measured: readonly StepTimes[];
  readonly predictedFrom: readonly number[];
  readonly predicted: {
    readonly stepSeconds: number;
    readonly computeSeconds: number;
    readonly waitSeconds: number;
    readonly allReduceSeconds: number;
    readonly commitSeconds: number;
    /** One evaluation (mean of those measured; 0 when none ran). */
    readonly evalSeconds: number;
  };
  readonly gpus: number;
  readonly plannedSteps: number;
  readonly plannedEvals: number;
  readonly gpuHours: number;
}

/** Steps of `p` (ceil(num_epochs × steps per epoch), as the data plan counts) and its evaluations. */
export function plannedRun(p: PlannedRun): { steps: number; evals: number } {
  const steps = Math.ceil(p.numEpochs * p.stepsPerEpoch);
  let evals = 0;
  if (p.evalMicroBatches > 0)
    for (let done = 1; done <= steps; done++) if (evalDue(done, p.evalSteps, steps)) evals++;
  return { steps, evals };
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);

/**
 * The prediction from `measured` (at least one step). The first step of a process includes warm-up
 * (workers syncing, first gradients), so it is left out when later steps exist.
 */
export function summarizeRehearsal(measured: readonly StepTimes[], plan: PlannedRun): RehearsalSummary {
  if (measured.length === 0) throw new Error('rehearsal summary: no step was measured');
  const used = measured.length > 1 ? measured.slice(1) : measured;
  const compute = mean(used.map((s) => s.computeSeconds));
  const wait = mean(used.map((s) => s.waitSeconds));
  const allReduce = mean(used.map((s) => s.allReduceSeconds));
  const commit = mean(used.map((s) => s.commitSeconds));
  const evals = measured.filter((s) => s.evalSeconds > 0).map((s) => s.evalSeconds);
  const evalSeconds = mean(evals);
  const stepSeconds = compute + wait + allReduce + commit;
  const gpus = used[used.length - 1]!.workers;
  const planned = plannedRun(plan);
  return {
    measured,
    predictedFrom: used.map((s) => s.step),
    predicted: {
      stepSeconds,
      computeSeconds: compute,
      waitSeconds: wait,
      allReduceSeconds: allReduce,
      commitSeconds: commit,
      evalSeconds,
    },
    gpus,
    plannedSteps: planned.steps,
    plannedEvals: planned.evals,
    gpuHours: (gpus * (planned.steps * stepSeconds + planned.evals * evalSeconds)) / 3600,
  };
}

const sec = (s: number) => (s >= 100 ? s.toFixed(1) : s >= 1 ? s.toFixed(3) : s.toFixed(4));

/** The summary for people: one line per part, saying which are modelled and which measured. */
export function rehearsalText(r: RehearsalSummary, plan: PlannedRun): string {
  const p = r.predicted;
  const share = (s: number) =>
    `${p.stepSeconds > 0 ? ((100 * s) / p.stepSeconds).toFixed(1) : '0.0'}%`.padStart(6);
  const row = (name: string, s: number, how: string) =>
    `  ${name.padEnd(11)} ${sec(s).padStart(9)} s ${share(s)}  ${how}`;
  const steps = r.predictedFrom;
  return [
    `rehearsal: predicted step time ${sec(p.stepSeconds)} s with ${r.gpus} GPU(s), from step(s) ${steps[0]! + 1}-${steps[steps.length - 1]! + 1} of this run` +
      (r.measured.length > steps.length ? ' (the first step, warm-up, left out)' : ''),
    row(
      'compute',
      p.computeSeconds,
      "MODELLED: the GPU profile's time for each micro-batch (FLOPs / (peak x MFU)), taken by the synthetic workers",
    ),
    row('wait', p.waitSeconds, 'measured: stragglers and dispatch (the train phase minus compute)'),
    row(
      'all-reduce',
      p.allReduceSeconds,
      'measured: real gradient size over the real NATS, until every checksum agreed',
    ),
    row('commit', p.commitSeconds, "measured: AdamW on the coordinator's replica, the journal, checkpoints"),
    `  evaluation  ${sec(p.evalSeconds).padStart(9)} s each (measured), ${r.plannedEvals} in the plan`,
    `GPU-hours of the real run: ${r.gpus} GPU(s) x (${r.plannedSteps} steps x ${sec(p.stepSeconds)} s + ${r.plannedEvals} evaluations x ${sec(p.evalSeconds)} s) / 3600 = ${r.gpuHours.toPrecision(4)} ` +
      `(${plan.numEpochs} epoch(s) of ${plan.stepsPerEpoch} steps)`,
  ].join('\n');
}

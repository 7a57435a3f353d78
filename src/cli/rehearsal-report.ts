// The coordinator's rehearsal report: when the base model is synthetic (so every worker is, see
// synthetic-flags.ts), it times each step from its own events and, at the end of the run, prints the
// predicted step time, its parts and the GPU-hours of the planned run, and writes them to
// OUTPUT_DIR/rehearsal.json (docs/scale.md#rehearsal).
import { join } from 'node:path';
import { RehearsalClock } from '../coordinator/rehearsal-clock.ts';
import { type PlannedRun, rehearsalText, summarizeRehearsal } from '../coordinator/rehearsal-summary.ts';
import type { Events } from '../events/events.ts';
import type { TappedEvent } from '../events/tap.ts';
import { writeFileAtomic } from '../train/atomic-write.ts';

export const REHEARSAL_JSON = 'rehearsal.json';

export class RehearsalReport {
  private readonly clock = new RehearsalClock();

  constructor(
    private readonly plan: PlannedRun,
    private readonly outputDir: string,
  ) {}

  /** Every event the coordinator emits (a tapEvents listener). */
  readonly record = (e: TappedEvent): void => this.clock.record(e);

  /**
   * The run is over: closes the last step, prints the summary as a `rehearsal_summary` event and
   * writes it beside the adapter. Nothing when no step ran in this process.
   */
  async finish(events: Events, time = Date.now()): Promise<void> {
    this.clock.finish(time);
    if (this.clock.steps.length === 0) return;
    const summary = summarizeRehearsal(this.clock.steps, this.plan);
    const path = join(this.outputDir, REHEARSAL_JSON);
    const json = {
      modelledParts: ['compute'],
      measuredParts: ['wait', 'allReduce', 'commit', 'eval', 'total'],
      plan: this.plan,
      ...summary,
      formula:
        'gpuHours = gpus * (plannedSteps * predicted.stepSeconds + plannedEvals * predicted.evalSeconds) / 3600',
    };
    await writeFileAtomic(path, `${JSON.stringify(json, null, 2)}\n`);
    events.info('rehearsal_summary', `${rehearsalText(summary, this.plan)}\nwritten to ${path}`, {
      path,
      step_seconds: summary.predicted.stepSeconds,
      gpus: summary.gpus,
      gpu_hours: summary.gpuHours,
    });
  }
}

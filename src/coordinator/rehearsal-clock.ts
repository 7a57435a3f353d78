// Where the coordinator's wall time goes, step by step, read from its own typed events (the status
// page and the metrics follow the same ones): dealing and computing (train), the all-reduce, the
// commit (AdamW on the coordinator's replica, the journal, checkpoints) and evaluation. A step runs
// from its first micro-batch dealt to the next step's, so its parts add up to its wall time.
// The train phase is split into compute and wait with each member's busy time, measured from the
// deal and the report of every micro-batch it computed (a worker computes them one after another):
//   busy(w) = Σ report(i) − max(dealt(i), report(previous of w)),   compute = mean over members,
//   wait = train − compute   (stragglers, dispatch, requeued work, retried rounds).
// With synthetic workers, busy time is the modelled GPU time of their micro-batches.
import type { TappedEvent } from '../events/tap.ts';

type Coarse = 'train' | 'allreduce' | 'commit' | 'eval';

/** One step's wall time in seconds, in parts that add up to `totalSeconds`. */
export interface StepTimes {
  readonly step: number;
  readonly totalSeconds: number;
  readonly computeSeconds: number;
  readonly waitSeconds: number;
  readonly allReduceSeconds: number;
  readonly commitSeconds: number;
  /** Evaluation after the step (0 when none was due). */
  readonly evalSeconds: number;
  /** Members of the step's committed all-reduce (the GPUs it used). */
  readonly workers: number;
}

interface OpenStep {
  readonly step: number;
  readonly start: number;
  phase: Coarse;
  since: number;
  readonly ms: Record<Coarse, number>;
  readonly dealtAt: Map<number, number>;
  readonly busy: Map<string, number>;
  readonly lastReport: Map<string, number>;
  members: readonly string[];
  /** Its all-reduce agreed: a step the run stopped in before that is not a step's time. */
  agreed: boolean;
}

export class RehearsalClock {
  private open: OpenStep | undefined;
  private readonly done: StepTimes[] = [];

  /** Steps closed so far, in order: those whose all-reduce agreed (a step stopped in is left out). */
  get steps(): readonly StepTimes[] {
    return this.done;
  }

  /** A tapped event of the coordinator (src/events/tap.ts); `time` in ms. */
  readonly record = (e: TappedEvent): void => {
    const t = e.time;
    switch (e.event) {
      case 'microbatches_dealt':
        if (e.fields.kind === 'eval') this.enter('eval', t);
        else this.dealt(e.fields.step, e.fields.micro_batches, t);
        return;
      case 'microbatch_completed':
        if (this.open?.phase === 'train' && e.fields.step === this.open.step)
          this.reported(this.open, e.fields.worker, e.fields.micro_batch, t);
        return;
      case 'reduce_started':
        if (this.open?.step === e.fields.step) this.open.members = e.fields.members;
        this.enter('allreduce', t);
        return;
      case 'reduce_aborted':
        this.enter('train', t);
        return;
      case 'reduce_agreed':
        if (this.open?.step === e.fields.step) this.open.agreed = true;
        this.enter('commit', t);
        return;
      case 'eval_done':
        this.enter('commit', t);
        return;
      default:
        return;
    }
  };

  /** The run is over (or stopped) at `time`: closes the step in progress. */
  finish(time: number): void {
    this.close(time);
  }

  private dealt(step: number, ids: readonly number[], t: number): void {
    if (this.open?.step !== step) {
      this.close(t);
      this.open = {
        step,
        start: t,
        phase: 'train',
        since: t,
        ms: { train: 0, allreduce: 0, commit: 0, eval: 0 },
        dealtAt: new Map(),
        busy: new Map(),
        lastReport: new Map(),
        members: [],
        agreed: false,
      };
    } else this.enter('train', t);
    for (const id of ids) this.open.dealtAt.set(id, t);
  }

  private reported(s: OpenStep, worker: string, id: number, t: number): void {
    const from = Math.max(s.dealtAt.get(id) ?? s.start, s.lastReport.get(worker) ?? s.start);
    s.busy.set(worker, (s.busy.get(worker) ?? 0) + Math.max(0, t - from));
    s.lastReport.set(worker, t);
  }

  private enter(phase: Coarse, t: number): void {
    const s = this.open;
    if (!s) return;
    s.ms[s.phase] += Math.max(0, t - s.since);
    s.since = Math.max(s.since, t);
    s.phase = phase;
  }

  private close(t: number): void {
    const s = this.open;
    if (!s) return;
    this.enter(s.phase, t);
    this.open = undefined;
    if (!s.agreed) return;
    const members = s.members;
    const busy = members.map((w) => Math.min(s.busy.get(w) ?? 0, s.ms.train));
    const compute = busy.length > 0 ? busy.reduce((a, b) => a + b, 0) / busy.length : 0;
    this.done.push({
      step: s.step,
      totalSeconds: (s.ms.train + s.ms.allreduce + s.ms.commit + s.ms.eval) / 1000,
      computeSeconds: compute / 1000,
      waitSeconds: (s.ms.train - compute) / 1000,
      allReduceSeconds: s.ms.allreduce / 1000,
      commitSeconds: s.ms.commit / 1000,
      evalSeconds: s.ms.eval / 1000,
      workers: members.length,
    });
  }
}

// What the step driver waits for at a step's boundaries: the run's records and checkpoints
// (run-journal.ts). These are control, not observation: the next step must not start before the
// checkpoint of this one is written, and a failure here ends the run. Everything that only watches
// the run (metrics, the status page) follows the driver's events instead (src/events/tap.ts).
import type { StepLedger, WorkerId } from './step-ledger.ts';

export interface CommitInfo {
  /** The step just committed (0-based); the replica now holds `step + 1` updates. */
  readonly step: number;
  readonly generation: number;
  readonly loss: number;
  readonly tokens: number;
  readonly gradNorm: number;
  readonly learningRate: number;
  readonly microBatchesByWorker: ReadonlyMap<WorkerId, number>;
  readonly ledger: StepLedger;
  /** Run totals so far (this process): replica checksum mismatches and requeued micro-batches. */
  readonly replicaMismatches: number;
  readonly microBatchesRequeued: number;
}

export interface StepJournal {
  /** After each commit (logs, metrics.jsonl); evaluation and the next step wait for it. */
  onCommit(info: CommitInfo): Promise<void>;
  /** After an evaluation of the adapter after `step` (0-based): its mean loss over `tokens`. */
  onEval(step: number, loss: number, tokens: number): Promise<void>;
  /** After a step and its evaluation (if one was due): checkpoints. `done` = steps completed. */
  afterStep(done: number): Promise<void>;
}

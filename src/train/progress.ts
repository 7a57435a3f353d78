// Progress a person can watch: on a terminal one live status line (step/total, loss, lr, tokens/s,
// ETA) redrawn in place; elsewhere (logs, CI, kubectl logs) plain lines every `logging_steps`.

export interface StepReport {
  readonly step: number;
  readonly totalSteps: number;
  readonly loss: number;
  readonly learningRate: number;
  readonly tokensPerSecond: number;
  readonly elapsedSeconds: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0
    ? `${h}h${String(m).padStart(2, '0')}m`
    : m > 0
      ? `${m}m${String(sec).padStart(2, '0')}s`
      : `${sec}s`;
}

export function formatStep(r: StepReport): string {
  const done = r.step;
  const eta = done > 0 ? (r.elapsedSeconds / done) * (r.totalSteps - done) : Number.NaN;
  return (
    `step ${done}/${r.totalSteps}  loss ${r.loss.toFixed(4)}  lr ${r.learningRate.toExponential(2)}  ` +
    `${r.tokensPerSecond.toFixed(0)} tok/s  elapsed ${formatDuration(r.elapsedSeconds)}  eta ${formatDuration(eta)}`
  );
}

export class Progress {
  private live = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly loggingSteps: number,
  ) {}

  get isTty(): boolean {
    return this.out.isTTY === true;
  }

  step(r: StepReport): void {
    if (this.isTty) {
      this.out.write(`\r\x1b[2K${formatStep(r)}`);
      this.live = true;
    } else if (r.step % this.loggingSteps === 0 || r.step === r.totalSteps) {
      this.out.write(`${formatStep(r)}\n`);
    }
  }

  /** A permanent line (eval results, checkpoints): printed above the live line. */
  line(text: string): void {
    if (this.live) this.out.write('\r\x1b[2K');
    this.out.write(`${text}\n`);
    this.live = false;
  }

  end(): void {
    if (this.live) this.out.write('\n');
    this.live = false;
  }
}

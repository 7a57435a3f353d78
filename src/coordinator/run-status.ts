// What the coordinator's status page shows (`GET /api/status`): the run's progress and curves, its
// workers and its recent events. Built from the coordinator's own events (the step_committed,
// eval_done and worker_* events its log carries) plus the live membership, so the page and the log
// never disagree.
import type { TappedEvent } from '../events/tap.ts';
import type { MemberPhase } from './members.ts';

/** Points kept per curve; past it every other point is dropped (the curve keeps its shape). */
export const MAX_CURVE_POINTS = 2000;
/** Events the page lists, newest first. */
export const RECENT_EVENTS = 40;
/**
 * Worker rows the page lists. Up to this many, all of them in id order; past it (a cluster), the
 * ones that need a look first — lost, still loading, silent longest, fewest micro-batches — and a
 * summary of all: the page stays the same size at 256 workers as at 24 (docs/scale.md).
 */
export const MAX_WORKER_ROWS = 24;

export type WorkerState = MemberPhase | 'lost' | 'left';

export interface WorkerRow {
  readonly id: string;
  readonly backend: string;
  readonly state: WorkerState;
  /** Micro-batches of this worker counted in committed steps (this coordinator's life). */
  readonly micro_batches: number;
  /** Milliseconds since anything arrived from it (heartbeats included). */
  readonly last_seen_ms_ago: number | null;
}

/** Every worker the coordinator knows, counted, whatever the rows show. */
export interface WorkerSummary {
  readonly total: number;
  readonly shown: number;
  readonly by_state: Readonly<Record<WorkerState, number>>;
  /** Micro-batches counted per connected worker: fewest, median, most (null with none connected). */
  readonly micro_batches: { readonly min: number; readonly median: number; readonly max: number } | null;
}

export interface StatusSnapshot {
  readonly run_id: string;
  /** What the run is doing now, in words (the step driver's own description). */
  readonly activity: string;
  readonly finished: boolean;
  readonly step: number;
  readonly total_steps: number;
  readonly loss: number | null;
  readonly eval_loss: number | null;
  readonly tokens_per_second: number | null;
  readonly eta_seconds: number | null;
  readonly started_at: string;
  readonly now: string;
  /** [step, loss] of committed steps and [step, eval loss] of evaluations. */
  readonly loss_curve: readonly (readonly [number, number])[];
  readonly eval_curve: readonly (readonly [number, number])[];
  readonly workers: readonly WorkerRow[];
  readonly worker_summary: WorkerSummary;
  readonly events: readonly { time: string; level: string; event: string; msg: string }[];
}

export interface LiveMember {
  readonly id: string;
  readonly phase: MemberPhase;
  readonly lastSeen: number;
}

interface Known {
  backend: string;
  state: WorkerState;
  microBatches: number;
  lastSeen: number | null;
}

const finite = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

function pushBounded(curve: [number, number][], point: [number, number]): void {
  curve.push(point);
  if (curve.length > MAX_CURVE_POINTS) {
    const kept = curve.filter((_, i) => i % 2 === 0 || i === curve.length - 1);
    curve.splice(0, curve.length, ...kept);
  }
}

export class RunStatus {
  private run = { runId: '', startStep: 0, totalSteps: 0 };
  private step = 0;
  private loss: number | null = null;
  private evalLoss: number | null = null;
  private tokensPerSecond: number | null = null;
  private eta: number | null = null;
  private finished = false;
  private readonly lossCurve: [number, number][] = [];
  private readonly evalCurve: [number, number][] = [];
  private readonly workers = new Map<string, Known>();
  private readonly recent: TappedEvent[] = [];
  private readonly startedAt: number;

  /** Made before the run is prepared, so the events of its preparation are shown too. */
  constructor(private readonly now: () => number = Date.now) {
    this.startedAt = now();
  }

  /** The run is prepared: its id, the step it starts at and its length. */
  begin(run: { readonly runId: string; readonly startStep: number; readonly totalSteps: number }): void {
    this.run = { ...run };
    this.step = run.startStep;
  }

  private worker(id: string): Known {
    let w = this.workers.get(id);
    if (!w) {
      w = { backend: 'unknown', state: 'loading', microBatches: 0, lastSeen: null };
      this.workers.set(id, w);
    }
    return w;
  }

  /** One of the coordinator's events (src/events/tap.ts). */
  readonly record = (e: TappedEvent): void => {
    const f = e.fields;
    const id = typeof f.worker === 'string' ? f.worker : undefined;
    switch (e.event) {
      case 'step_committed': {
        this.step = finite(f.step) ?? this.step;
        this.loss = finite(f.loss);
        this.tokensPerSecond = finite(f.tokens_per_second);
        this.eta = finite(f.eta_seconds);
        if (this.loss !== null) pushBounded(this.lossCurve, [this.step, this.loss]);
        const split = (f.micro_batches ?? {}) as Record<string, unknown>;
        for (const [w, n] of Object.entries(split)) this.worker(w).microBatches += finite(n) ?? 0;
        return; // a line per step would flood the event list; the curve shows steps
      }
      case 'eval_done':
        this.evalLoss = finite(f.eval_loss);
        if (this.evalLoss !== null) pushBounded(this.evalCurve, [finite(f.step) ?? this.step, this.evalLoss]);
        break;
      case 'worker_joined':
        if (id) {
          const w = this.worker(id);
          w.backend = typeof f.backend === 'string' ? f.backend : w.backend;
          w.state = 'loading';
        }
        break;
      case 'worker_lost':
        if (id) this.worker(id).state = 'lost';
        break;
      case 'worker_left':
        if (id) this.worker(id).state = 'left';
        break;
      case 'run_finished':
      case 'run_already_finished':
        this.finished = true;
        break;
    }
    if (e.level === 'debug') return;
    this.recent.push(e);
    if (this.recent.length > RECENT_EVENTS) this.recent.shift();
  };

  /** The page's data now, given the workers connected now and what the driver is doing. */
  snapshot(members: readonly LiveMember[], activity: string): StatusSnapshot {
    const now = this.now();
    for (const m of members) {
      const w = this.worker(m.id);
      w.state = m.phase;
      w.lastSeen = m.lastSeen;
    }
    const connected = new Set(members.map((m) => m.id));
    const rows = [...this.workers.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, w]) => ({
        id,
        backend: w.backend,
        // Gone without an event (a finished run closing its streams): left.
        state: connected.has(id) || w.state === 'lost' ? w.state : ('left' as const),
        micro_batches: w.microBatches,
        last_seen_ms_ago: w.lastSeen === null ? null : Math.max(0, now - w.lastSeen),
      }));
    const workers =
      rows.length <= MAX_WORKER_ROWS ? rows : [...rows].sort(byAttention).slice(0, MAX_WORKER_ROWS);
    return {
      run_id: this.run.runId,
      activity,
      finished: this.finished,
      step: this.step,
      total_steps: this.run.totalSteps,
      loss: this.loss,
      eval_loss: this.evalLoss,
      tokens_per_second: this.tokensPerSecond,
      eta_seconds: this.eta,
      started_at: new Date(this.startedAt).toISOString(),
      now: new Date(now).toISOString(),
      loss_curve: this.lossCurve,
      eval_curve: this.evalCurve,
      workers,
      worker_summary: summarize(rows, workers.length, connected),
      events: [...this.recent].reverse().map((e) => ({
        time: new Date(e.time).toISOString(),
        level: e.level,
        event: e.event,
        msg: e.msg,
      })),
    };
  }
}

/** Lost first, then loading and ready ones, then the silent longest, then the fewest micro-batches. */
const ATTENTION: Record<WorkerState, number> = { lost: 0, loading: 1, ready: 2, synced: 3, left: 4 };

function byAttention(a: WorkerRow, b: WorkerRow): number {
  return (
    ATTENTION[a.state] - ATTENTION[b.state] ||
    (b.last_seen_ms_ago ?? -1) - (a.last_seen_ms_ago ?? -1) ||
    a.micro_batches - b.micro_batches
  );
}

function summarize(rows: readonly WorkerRow[], shown: number, connected: ReadonlySet<string>): WorkerSummary {
  const by_state: Record<WorkerState, number> = { loading: 0, ready: 0, synced: 0, lost: 0, left: 0 };
  for (const r of rows) by_state[r.state]++;
  const done = rows
    .filter((r) => connected.has(r.id))
    .map((r) => r.micro_batches)
    .sort((a, b) => a - b);
  const micro_batches =
    done.length === 0
      ? null
      : { min: done[0]!, median: done[Math.floor(done.length / 2)]!, max: done[done.length - 1]! };
  return { total: rows.length, shown, by_state, micro_batches };
}

// What each message of a worker does to the run (DESIGN.md §2-3): ready with the run's base model
// (then synced between commits), credits, micro-batch results (checked, counted once), micro-batches
// given back, all-reduce answers and blames, refused data (offences.ts decides the cost), and a
// worker lost at any point. StepDriver (step-driver.ts) extends this with the phases: every change
// of phase is written there; this file reads the current phase and calls those transitions.

import type { FrameEvidence } from '../collective/evidence.ts';
import type { MicroBatch } from '../data/micro-batch.ts';
import type { Events } from '../events/events.ts';
import { evidenceFromWire } from '../protocol/frame-evidence.ts';
import { MicroBatchKind } from '../protocol/messages.ts';
import { peerText } from '../protocol/peer-text.ts';
import type { FrameEvidenceReport, MicroBatchResult, ReduceResult, Revoked } from '../protocol/wire.ts';
import { Accusations, MAX_UNVERIFIED_PER_STEP } from './accusations.ts';
import { checkContributions, type RefusedContribution } from './contribution-check.ts';
import { Members, type WorkerLink } from './members.ts';
import { OFFENCES_BEFORE_DROP, Offences } from './offences.ts';
import { Quarantine } from './quarantine.ts';
import type { ReduceRound } from './reduce-rounds.ts';
import { ReplicaSync } from './replica-sync.ts';
import type { Phase, StepDriverOptions } from './step-driver.ts';
import type { StepLedger, WorkerId } from './step-ledger.ts';
import { StepWork } from './step-work.ts';

/** First quarantine of a worker whose contribution was refused; doubled at each further refusal. */
export const CONTRIBUTION_QUARANTINE_MS = 10_000;

export abstract class WorkerReports {
  readonly members = new Members();
  /** Where the run is; only StepDriver assigns it. */
  protected abstract phase: Phase;
  protected readonly events: Events;
  protected readonly work: StepWork;
  protected readonly offences = new Offences();
  protected readonly accusations: Accusations;
  /** The evidence each member sent for the blame of its next ReduceResult (one at a time). */
  private readonly evidence = new Map<WorkerId, FrameEvidenceReport>();
  private readonly quarantine = new Quarantine();
  protected readonly sync: ReplicaSync;
  /** The current step's micro-batches by id, and the evaluation's. */
  protected byId = new Map<number, MicroBatch>();
  protected readonly evalById: ReadonlyMap<number, MicroBatch>;

  constructor(
    private readonly run: Pick<
      StepDriverOptions,
      'runId' | 'modelFingerprint' | 'replica' | 'evalMicroBatches' | 'events' | 'frameRules'
    >,
  ) {
    this.accusations = new Accusations(run.frameRules);
    this.events = run.events;
    this.work = new StepWork(run.events);
    this.sync = new ReplicaSync(run.replica, run.modelFingerprint, run.events);
    this.evalById = new Map(run.evalMicroBatches.map((m) => [m.id, m]));
  }

  /** Steps committed so far (the replica's updates). */
  get step(): number {
    return this.run.replica.step;
  }

  /** Worker ids dropped for good: their Hello is refused for the rest of the run. */
  get dropped(): ReadonlySet<string> {
    return this.offences.dropped;
  }

  /** Deals what can be dealt, or moves on when the step (or the evaluation) is whole. */
  protected abstract advance(): void;
  /** Syncs the ready replicas, when state may move (between commits). */
  protected abstract syncReady(): void;
  /** Gives the all-reduce in flight up (back to the step's train phase). */
  protected abstract abortReduce(reason: string): void;
  /** Commits, retries or repairs once every member of the round answered. */
  protected abstract maybeCommit(): void;
  /** For status lines: what the run is doing now. */
  abstract describe(): string;

  /** A worker passed the handshake; it loads its model and then reports ready. */
  join(link: WorkerLink): void {
    this.members.add(link);
  }

  onReady(id: WorkerId, fingerprint: string, framePublicKey?: Uint8Array): void {
    const m = this.members.get(id);
    if (!m) return;
    if (framePublicKey) m.framePublicKey = new Uint8Array(framePublicKey);
    const refusal = this.sync.refusal(fingerprint);
    if (refusal) {
      this.lose(id, refusal.lost);
      m.link.close(refusal.close);
      return;
    }
    m.phase = 'ready';
    this.syncReady();
    // advance, not deal: a step whose micro-batches are all done may be waiting for replicas.
    this.advance();
  }

  onCredit(id: WorkerId, credits: number): void {
    const m = this.members.get(id);
    if (!m) return;
    this.members.grant(m, credits, this.held(id));
    // Its first credit says its state arrived: the next ready worker may be synced.
    if (this.sync.answered(id)) this.syncReady();
    this.advance();
  }

  onResult(id: WorkerId, r: MicroBatchResult): void {
    const m = this.members.get(id);
    if (!m) return;
    const p = this.phase;
    const isEval = r.kind === MicroBatchKind.MICRO_BATCH_KIND_EVAL;
    if (isEval ? p.kind === 'eval' : p.kind === 'train' && r.step === p.ledger.step) {
      const ledger = (p as Extract<Phase, { kind: 'train' | 'eval' }>).ledger;
      const refused = this.work.count(ledger, isEval ? this.evalById : this.byId, id, r, !isEval);
      if (refused !== undefined) {
        this.refuse(id, refused);
        return;
      }
    } else {
      this.events.info(
        'result_ignored',
        `ignored ${isEval ? 'eval' : 'train'} result of micro-batch ${r.id} (step ${r.step}) from ${id}: the run is at ${this.describe()}`,
        { worker: id, step: r.step, micro_batch: r.id },
      );
    }
    this.members.grant(m, 1, this.held(id)); // a result returns the credit its micro-batch used
    this.advance();
  }

  /** Micro-batches `id` holds now (dealt, not reported) in the current step or evaluation. */
  private held(id: WorkerId): number {
    const p = this.phase;
    return p.kind === 'train' || p.kind === 'eval' ? p.ledger.heldCount(id) : 0;
  }

  /** How long worker `id` may hold a micro-batch before it is lost (StepWork.deadline). */
  microBatchDeadline(id: WorkerId, floorMs: number, fixedMs?: number): number {
    return this.work.deadline(id, floorMs, fixedMs);
  }

  /** A worker gave back micro-batches it had not started: deal them again. */
  onRevoked(id: WorkerId, r: Revoked): void {
    const m = this.members.get(id);
    if (!m) return;
    m.revoking = false;
    const p = this.phase;
    if ((p.kind === 'train' || p.kind === 'eval') && r.step === p.ledger.step) {
      const back = this.work.revoke(p.ledger, id, r.ids);
      // Deal them before the straggler gets its credits back, so they go to the idle workers.
      this.advance();
      this.members.grant(m, back, this.held(id));
    }
    this.advance();
  }

  /**
   * A member's evidence for the blame of the ReduceResult it sends next: the offending frame, signed
   * by the member it accuses. Announced as an event and kept for that blame, which checks it
   * (accusations.ts, with the run's frame key and the round's keys); a later report replaces it.
   */
  onFrameEvidence(id: WorkerId, e: FrameEvidenceReport): void {
    if (this.members.has(id)) this.evidence.set(id, e);
    this.events.info(
      'frame_evidence',
      `${id} holds a frame signed by ${peerText(e.accused)} as evidence (${peerText(e.evidence?.reason ?? 'none', 16)}) in step ${e.step} generation ${e.generation}`,
      {
        worker: id,
        accused: peerText(e.accused),
        reason: peerText(e.evidence?.reason ?? '', 16),
        step: e.step,
        generation: e.generation,
      },
    );
  }

  onReduceResult(id: WorkerId, r: ReduceResult): void {
    const p = this.phase;
    // A member says another's all-reduce data was bad (non-finite, forged, contradictory): its word
    // is judged, never taken (accusations.ts). It may answer after the round was aborted.
    if (r.blame !== '' && this.members.get(id)?.phase === 'synced') {
      this.accusation(id, r);
      if (this.phase !== p || !this.members.has(id)) return;
    }
    if (
      p.kind !== 'reduce' ||
      r.generation !== p.round.generation ||
      r.step !== p.ledger.step ||
      !p.round.members.includes(id)
    ) {
      // A result of an aborted generation, an older step, or from a non-member: it proves nothing now.
      this.events.info(
        'reduce_result_ignored',
        `ignored reduce result of step ${r.step} generation ${r.generation} from ${id}: the run is at ${this.describe()}`,
        { worker: id, step: r.step, generation: r.generation },
      );
      return;
    }
    p.results.set(id, r);
    this.maybeCommit();
  }

  /** A member blamed another: a false blame costs the accuser; an unverifiable one, nobody (at first). */
  private accusation(id: WorkerId, r: ReduceResult): void {
    const accused = peerText(r.blame);
    const v = this.accusations.judge(id, r.blame, r.step, r.generation, this.evidenceFor(id, r));
    if (v.kind === 'proven') {
      // The accused signed the bad frame: it pays as for bad data the coordinator saw itself.
      this.blame(r.blame, r.generation, `${v.why}; shown by ${id}`);
      return;
    }
    if (v.kind === 'false') {
      this.refuse(id, `it blamed ${accused} for step ${r.step} generation ${r.generation} falsely: ${v.why}`);
      return;
    }
    this.events.warn(
      'blame_ignored',
      `${id} blamed ${accused} for its data of step ${r.step} generation ${r.generation}; nothing the coordinator observed supports it, so ${accused} pays nothing (${v.count} of ${MAX_UNVERIFIED_PER_STEP} such blames from ${id} in this step)`,
      { worker: id, accused, step: r.step, generation: r.generation, count: v.count },
    );
    if (v.penalise) {
      this.refuse(
        id,
        `it stopped ${v.count} rounds of step ${r.step} with blames nothing the coordinator observed supports`,
      );
    }
  }

  /** The evidence `id` sent for exactly this blame, as the collective reads it; taken once. */
  private evidenceFor(id: WorkerId, r: ReduceResult): FrameEvidence | undefined {
    const e = this.evidence.get(id);
    this.evidence.delete(id);
    if (!e?.evidence || e.accused !== r.blame || e.step !== r.step || e.generation !== r.generation)
      return undefined;
    const read = evidenceFromWire(e.evidence);
    return typeof read === 'string' ? undefined : read;
  }

  /** Acts once per (generation, worker) on bad all-reduce data proven to be its own. */
  protected blame(worker: string, generation: number, why: string): void {
    if (!this.members.has(worker) || !this.offences.blame(worker, generation)) return;
    this.refuse(worker as WorkerId, `its all-reduce data of generation ${generation} was refused (${why})`);
  }

  /**
   * A worker sent what cannot be counted. Its micro-batches of the step go back to the queue (its
   * accumulator may hold the bad values) and its session ends: the first time it reconnects and is
   * re-synced with a zeroed accumulator; the OFFENCES_BEFORE_DROP-th time it is dropped from the run.
   */
  private refuse(id: WorkerId, why: string): void {
    const m = this.members.get(id);
    if (!m) return;
    const { offences: n, dropped } = this.offences.refuse(id);
    this.events.warn(
      'result_refused',
      `refused a result of worker ${id} (${n} of ${OFFENCES_BEFORE_DROP}): ${why}; ${dropped ? 'dropped from the run' : 'its session is reset'}`,
      { worker: id, step: this.step, why, offences: n, dropped },
    );
    this.lose(id, `result refused: ${why}`);
    if (dropped) m.link.close(`dropped from run ${this.run.runId}: ${why} (${n} refused results)`);
    else m.link.drop(`result refused: ${why}; reconnect to be re-synced`);
  }

  /** The worker's stream ended or it missed its heartbeat deadline. */
  lose(id: WorkerId, why: string): void {
    const m = this.members.get(id);
    if (!m) return;
    this.members.remove(id);
    this.evidence.delete(id);
    const syncWaited = this.sync.answered(id);
    if (this.phase.kind === 'finished') {
      this.events.info('worker_left', `worker ${id} left the finished run`, { worker: id });
      return;
    }
    if (syncWaited) this.syncReady();
    this.events.warn('worker_lost', `worker ${id} lost: ${why}`, { worker: id, step: this.step, why });
    const p = this.phase;
    if (p.kind === 'train' || p.kind === 'eval') {
      this.work.requeue(p.ledger, id);
    } else if (p.kind === 'reduce' && p.round.members.includes(id)) {
      this.abortReduce(`member ${id} was lost`);
      this.work.requeue(p.ledger, id);
    }
    this.advance();
  }

  /**
   * Worker `id` held micro-batches `ids` past its deadline of `deadlineMs`: revoked now (they go to
   * the others: the step waits no longer for them) and kept out for a growing while (quarantine.ts).
   */
  hoarded(id: WorkerId, ids: readonly number[], deadlineMs: number): void {
    if (!this.members.has(id)) return;
    const q = this.quarantine.impose(id, deadlineMs);
    const why = `micro-batches ${ids.join(', ')} not reported within ${deadlineMs} ms`;
    this.events.warn(
      'worker_quarantined',
      `worker ${id}: ${why}; revoked, and quarantined for ${Math.ceil(q.ms / 1000)} s (offence ${q.offences}, doubling each time)`,
      { worker: id, step: this.step, why, offences: q.offences, quarantine_ms: q.ms, reason: 'hoarding' },
    );
    this.lose(id, why);
  }

  /**
   * Every member answered the round: refuses the contributions the shard owners' measures condemn
   * (contribution-check.ts). Each offender is lost (the round is aborted, its micro-batches go to the
   * others, the step commits without it) and quarantined. True when any was refused.
   */
  protected refuseContributions(
    round: ReduceRound,
    results: ReadonlyMap<WorkerId, ReduceResult>,
    ledger: StepLedger,
    factor: number,
  ): boolean {
    const refused = checkContributions(round.members, results, ledger.selfReports(), factor);
    for (const r of refused) this.contributionRefused(r, round);
    return refused.length > 0;
  }

  private contributionRefused(r: RefusedContribution, round: ReduceRound): void {
    const m = this.members.get(r.worker);
    if (!m) return;
    const q = this.quarantine.impose(r.worker, CONTRIBUTION_QUARANTINE_MS);
    const { step, generation } = round;
    this.events.warn(
      'contribution_refused',
      `refused worker ${r.worker}'s contribution to step ${step} generation ${generation} (${r.kind}): ${r.why}; its micro-batches go to the others and it is quarantined for ${Math.ceil(q.ms / 1000)} s (offence ${q.offences}, doubling each time)`,
      { worker: r.worker, step, generation, kind: r.kind, measured_norm: r.measured, why: r.why },
    );
    this.events.warn('worker_quarantined', `worker ${r.worker}: contribution refused (${r.kind})`, {
      worker: r.worker,
      step,
      why: r.why,
      offences: q.offences,
      quarantine_ms: q.ms,
      reason: 'contribution',
    });
    this.lose(r.worker, `contribution refused: ${r.why}`);
    m.link.drop(`contribution refused: ${r.why}; quarantined for ${Math.ceil(q.ms / 1000)} s`);
  }

  /** Milliseconds before worker `id` may rejoin after a quarantine, or undefined. */
  quarantinedFor(id: string): number | undefined {
    return this.quarantine.remaining(id);
  }

  /**
   * Workers holding a micro-batch of the current step or evaluation for longer than `ms` since it
   * was dealt (queued ones count: the deadline must cover max_in_flight computes), with the ids.
   */
  overdueWorkers(ms: number | ((worker: WorkerId) => number)): Map<WorkerId, number[]> {
    const p = this.phase;
    if (p.kind !== 'train' && p.kind !== 'eval') return new Map();
    return p.ledger.overdue(ms);
  }
}

// How a worker becomes a replica (DESIGN.md §2, step 5): the base model it loaded must be the
// run's (same fingerprint), then it receives the coordinator's adapter and optimizer state; a
// replica whose state was found to differ is sent the same state again. The step driver says when:
// state moves only between commits (a replica that joined mid-reduce would miss the gradient).
import type { Events } from '../events/events.ts';
import { floatBytes, stateSyncMessage } from '../protocol/messages.ts';
import type { AdapterReplica } from '../train/replica.ts';
import type { Members, WorkerLink } from './members.ts';

export interface ModelRefusal {
  /** Why the worker is lost (the event). */
  readonly lost: string;
  /** What the worker is told as its stream closes. */
  readonly close: string;
}

/**
 * Replicas sent the state and not yet answered: each sync is a serialized copy of the adapter and
 * both AdamW moments (3 x the adapter) buffered until its stream drains, so 256 workers joining at
 * once would hold 256 copies. The rest wait for an answer (their first credit: the state arrived).
 */
export const SYNCS_IN_FLIGHT = 16;

export class ReplicaSync {
  private readonly unanswered = new Set<string>();

  /** The state message of the replica's current step: hashed once, not once per joining worker. */
  private built: { readonly step: number; readonly msg: ReturnType<typeof stateSyncMessage> } | undefined;

  constructor(
    private readonly replica: AdapterReplica,
    private readonly modelFingerprint: string,
    private readonly events: Events,
  ) {}

  /** Why a worker whose base model has `fingerprint` cannot be a replica of this run, if so. */
  refusal(fingerprint: string): ModelRefusal | undefined {
    if (fingerprint === this.modelFingerprint) return undefined;
    return {
      lost: `its base model fingerprint ${fingerprint} differs from the run's ${this.modelFingerprint}`,
      close: `base model mismatch: the worker loaded a model with fingerprint ${fingerprint}, the run uses ${this.modelFingerprint}; mount the same --base_model`,
    };
  }

  /**
   * Sends the state to the members that are ready, SYNCS_IN_FLIGHT at a time; they are replicas
   * from now on (members of every all-reduce) and take micro-batches from step `dealFrom`.
   */
  syncReady(members: Members, dealFrom: number): void {
    for (const m of members.inPhase('ready')) {
      if (this.unanswered.size >= SYNCS_IN_FLIGHT) return;
      this.unanswered.add(m.link.id);
      m.link.send(this.message());
      m.phase = 'synced';
      m.dealFrom = dealFrom;
      this.events.info(
        'worker_synced',
        `worker ${m.link.id} is a replica from step ${this.replica.step} (${this.replica.layout.size} adapter values), dealt micro-batches from step ${dealFrom}`,
        { worker: m.link.id, step: this.replica.step, deal_from: dealFrom },
      );
    }
  }

  /**
   * Worker `id` answered its sync (its first credit) or is gone: its place goes to the next ready
   * one. Returns whether a sync was waiting on it.
   */
  answered(id: string): boolean {
    return this.unanswered.delete(id);
  }

  /** Sends the state again to replica `id` (if still connected): its state differs from ours. */
  resend(id: string, link: WorkerLink | undefined): void {
    this.events.info('state_resent', `re-sending the coordinator's state to ${id}`, { worker: id });
    link?.send(this.message());
  }

  private message() {
    // The state changes only when a step is applied, which moves the replica's step.
    if (this.built?.step === this.replica.step) return this.built.msg;
    const s = this.replica.state;
    const msg = stateSyncMessage({
      step: this.replica.step,
      optimizerSteps: s.step,
      names: this.replica.layout.specs.map((x) => x.name),
      params: floatBytes(s.params),
      expAvg: floatBytes(s.expAvg),
      expAvgSq: floatBytes(s.expAvgSq),
      checksum: this.replica.checksum(),
    });
    this.built = { step: this.replica.step, msg };
    return msg;
  }
}

// The workers the coordinator knows, with where each is in its life: `loading` (welcomed, loading
// the base model), `ready` (model loaded and checked, waiting for the adapter state) and `synced`
// (a replica that takes micro-batches). Links abstract the gRPC stream so the run logic owns no socket.
import type { CoordinatorMessage } from '../proto/lora_mpt/v1/coordinator.ts';
import type { WorkerId } from './step-ledger.ts';

export interface WorkerLink {
  readonly id: WorkerId;
  send(msg: CoordinatorMessage): void;
  /** Ends the stream with a reason the worker prints. */
  close(reason: string): void;
}

export type MemberPhase = 'loading' | 'ready' | 'synced';

export interface Member {
  readonly link: WorkerLink;
  phase: MemberPhase;
  /** Micro-batches the worker can take now. */
  credits: number;
  /** Last time anything arrived from it (ms). */
  lastSeen: number;
  /** A Revoke was sent and its answer has not come yet. */
  revoking: boolean;
}

export class Members {
  private readonly byId = new Map<WorkerId, Member>();

  constructor(private readonly now: () => number = Date.now) {}

  add(link: WorkerLink): Member {
    const m: Member = { link, phase: 'loading', credits: 0, lastSeen: this.now(), revoking: false };
    this.byId.set(link.id, m);
    return m;
  }

  get(id: WorkerId): Member | undefined {
    return this.byId.get(id);
  }

  remove(id: WorkerId): void {
    this.byId.delete(id);
  }

  has(id: string): boolean {
    return this.byId.has(id as WorkerId);
  }

  ids(): ReadonlySet<string> {
    return new Set(this.byId.keys());
  }

  touch(id: WorkerId): void {
    const m = this.byId.get(id);
    if (m) m.lastSeen = this.now();
  }

  all(): Member[] {
    return [...this.byId.values()];
  }

  /** Members in a phase, in id order (so dispatch and reduce membership are deterministic). */
  inPhase(phase: MemberPhase): Member[] {
    return this.all()
      .filter((m) => m.phase === phase)
      .sort((a, b) => (a.link.id < b.link.id ? -1 : a.link.id > b.link.id ? 1 : 0));
  }

  /** Members silent for longer than `ms`. */
  silentFor(ms: number): Member[] {
    const limit = this.now() - ms;
    return this.all().filter((m) => m.lastSeen < limit);
  }

  count(phase: MemberPhase): number {
    return this.inPhase(phase).length;
  }
}

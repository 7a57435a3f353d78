// The workers the coordinator knows, with where each is in its life: `loading` (welcomed, loading
// the base model), `ready` (model loaded and checked, waiting for the adapter state) and `synced`
// (a replica that takes micro-batches). Links abstract the gRPC stream so the run logic owns no socket.
import type { CoordinatorMessage } from '../protocol/wire.ts';
import type { WorkerId } from './step-ledger.ts';

export interface WorkerLink {
  readonly id: WorkerId;
  send(msg: CoordinatorMessage): void;
  /** Ends the stream with a refusal the worker prints and exits on (it may not come back). */
  close(reason: string): void;
  /** Ends the stream so that the worker reconnects and is re-synced (a fresh replica). */
  drop(reason: string): void;
  /** Most micro-batches this worker may hold at once (its credit cap); default DEFAULT_MAX_CREDITS. */
  readonly maxCredits?: number;
  /** The machine the worker said it runs on (Hello); '' or absent: not said. */
  readonly nodeName?: string;
}

const byId = (a: Member, b: Member) => (a.link.id < b.link.id ? -1 : a.link.id > b.link.id ? 1 : 0);

/** A worker that declares no --max_in_flight may hold this many micro-batches. */
export const DEFAULT_MAX_CREDITS = 2;

export type MemberPhase = 'loading' | 'ready' | 'synced';

export interface Member {
  readonly link: WorkerLink;
  phase: MemberPhase;
  /** Micro-batches the worker can take now (changed only by Members.grant and Members.take). */
  readonly credits: number;
  /** Credits plus held micro-batches never exceed this (a peer cannot hoard the step's work). */
  readonly maxCredits: number;
  /** Raw Ed25519 public key of the worker's frame signing key, from its Ready. */
  framePublicKey?: Uint8Array;
  /** Last time anything arrived from it (ms). */
  lastSeen: number;
  /** A Revoke was sent and its answer has not come yet. */
  revoking: boolean;
  /**
   * The first step whose micro-batches it takes: a replica synced after a step's dealing began
   * takes part in that step's all-reduce (its replica must stay current) but is dealt from the next.
   */
  dealFrom: number;
}

/**
 * A member as Members keeps it: only Members changes its credits (to keep `withCredit` true), and
 * `creditSlot` is its index in `withCredit` (-1: not there).
 */
type Kept = Member & { credits: number; creditSlot: number };

export class Members {
  private readonly byId = new Map<WorkerId, Kept>();
  /**
   * The members whose credits are > 0, whatever their phase, in no order. Dealing, at every result,
   * looks at these (usually just the worker that reported) rather than at every replica. An array
   * with each member's slot, not a Set: a member leaves and rejoins it at nearly every result, and a
   * Set's table was reallocated as it shrank and grew (garbage at 10,000 results/s, docs/scale.md).
   */
  private readonly withCredit: Kept[] = [];
  /** Every member in id order; rebuilt only when one joins or leaves (dealing reads it per result). */
  private sorted: Member[] | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  add(link: WorkerLink): Member {
    const old = this.byId.get(link.id);
    if (old) this.leaveCredit(old);
    const m: Kept = {
      link,
      phase: 'loading',
      credits: 0,
      maxCredits: link.maxCredits ?? DEFAULT_MAX_CREDITS,
      lastSeen: this.now(),
      revoking: false,
      dealFrom: 0,
      creditSlot: -1,
    };
    this.byId.set(link.id, m);
    this.sorted = undefined;
    return m;
  }

  get(id: WorkerId): Member | undefined {
    return this.byId.get(id);
  }

  remove(id: WorkerId): void {
    const m = this.byId.get(id);
    if (!m) return;
    this.byId.delete(id);
    this.leaveCredit(m);
    this.sorted = undefined;
  }

  has(id: string): boolean {
    return this.byId.has(id as WorkerId);
  }

  ids(): ReadonlySet<string> {
    return new Set(this.byId.keys());
  }

  /** Gives `m` `n` more credits, never beyond its cap less the micro-batches it holds now. */
  grant(m: Member, n: number, held: number): void {
    this.setCredits(m, Math.max(0, Math.min(m.credits + n, m.maxCredits - held)));
  }

  /** `m` was dealt a micro-batch: one credit fewer. */
  take(m: Member): void {
    this.setCredits(m, m.credits - 1);
  }

  private setCredits(m: Member, credits: number): void {
    const kept = this.byId.get(m.link.id);
    // A member already removed (or replaced by a newer session of the same id) is not dealt to.
    if (kept !== m) return;
    kept.credits = credits;
    if (credits > 0) {
      if (kept.creditSlot < 0) kept.creditSlot = this.withCredit.push(kept) - 1;
    } else this.leaveCredit(kept);
  }

  /** Takes `m` out of `withCredit`: the last member moves into its slot. */
  private leaveCredit(m: Kept): void {
    const slot = m.creditSlot;
    if (slot < 0) return;
    const last = this.withCredit.pop()!;
    if (last !== m) {
      this.withCredit[slot] = last;
      last.creditSlot = slot;
    }
    m.creditSlot = -1;
  }

  touch(id: WorkerId): void {
    const m = this.byId.get(id);
    if (m) m.lastSeen = this.now();
  }

  all(): Member[] {
    return [...this.byId.values()];
  }

  /** Every member, in no particular order, without a copy (for counting on the dispatch path). */
  values(): IterableIterator<Member> {
    return this.byId.values();
  }

  /** Members in a phase, in id order (so dispatch and reduce membership are deterministic). */
  inPhase(phase: MemberPhase): Member[] {
    return this.byIdOrder().filter((m) => m.phase === phase);
  }

  /**
   * Synced members that can take a micro-batch of `step` now, in id order (the dealer asks at every
   * result).
   */
  syncedWithCredit(step: number): Member[] {
    const out: Member[] = [];
    for (const m of this.withCredit) if (m.phase === 'synced' && m.dealFrom <= step) out.push(m);
    return out.length < 2 ? out : out.sort(byId);
  }

  private byIdOrder(): Member[] {
    this.sorted ??= this.all().sort(byId);
    return this.sorted;
  }

  /** Members silent for longer than `ms`. */
  silentFor(ms: number): Member[] {
    const limit = this.now() - ms;
    return this.all().filter((m) => m.lastSeen < limit);
  }

  count(phase: MemberPhase): number {
    let n = 0;
    for (const m of this.byId.values()) if (m.phase === phase) n++;
    return n;
  }
}

// What an all-reduce algorithm is to the rest of src/collective: how a member takes part in a round
// and where an observer hears the round's final bytes. Each algorithm is one file implementing
// `Algorithm` (shard-owner.ts, ring.ts, hierarchical.ts), listed once in algorithms.ts; no other file names one.
import type { ContributionNorms } from './contributions.ts';
import type { FrameKind } from './frame.ts';
import type { Round } from './round.ts';
import type { RoundSpec } from './round-spec.ts';

/** One member's part in a round, made before the ready barrier (it subscribes on construction). */
export interface MemberPart {
  /** The elementwise sum (the `result` it was given); whole when the round completes. */
  readonly result: Float32Array;
  /** After the barrier: sends this member's data. */
  start(): void;
  /** What this member measured of each contributor as the owner of a shard (shard-owner only). */
  readonly contributions?: ContributionNorms;
}

/** A subscription that carries final bytes: frames of `kind` on `subject`, only of `shard` when given. */
export interface FinalBytes {
  readonly subject: string;
  readonly kind: FrameKind;
  readonly shard?: number;
}

/** Where an observer receives each shard's final bytes once, and who sends them (named on timeout). */
export interface ObserverPlan {
  readonly subscriptions: readonly FinalBytes[];
  sender(shard: number): string;
}

export interface Algorithm {
  /** One line for --help and the docs: what it costs. */
  readonly summary: string;
  /** Fewest members it runs with; a smaller round runs the default algorithm (algorithms.ts). */
  readonly minMembers: number;
  /** Shards the round's layout cuts the vector into; default one per member (hierarchical: lanes·nodes). */
  shards?(spec: RoundSpec): number;
  /**
   * Joins `round` as a member contributing `data` (not modified): subscribes, sets
   * `round.missingData`, and completes the round when `result` is whole. `result` (data's length,
   * not overlapping it) holds arbitrary bytes until then: every element must be written. Every
   * member of a round must end with the same bytes (docs/collective.md, "Bitwise identity").
   */
  member(round: Round, data: Float32Array, result: Float32Array): MemberPart;
  /** Where a non-contributing observer of `spec` hears the final bytes of every shard. */
  observer(spec: RoundSpec): ObserverPlan;
}

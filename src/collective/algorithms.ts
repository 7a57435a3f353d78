// The all-reduce algorithms by the name users pass (`--allreduce_algorithm`, RunConfig, ReduceStart):
// the one list. A new algorithm is its own file implementing `Algorithm` plus one line here.
import type { Algorithm } from './algorithm.ts';
import { AllReduceInputError } from './errors.ts';
import { hierarchical } from './hierarchical.ts';
import { ring } from './ring.ts';
import { shardOwner } from './shard-owner.ts';

const ALGORITHMS = {
  'shard-owner': shardOwner,
  ring,
  hierarchical,
} as const satisfies Record<string, Algorithm>;

export type AllReduceAlgorithm = keyof typeof ALGORITHMS;

/** n·G into the server and 2 hops (ring: 2(n-1)·G, 2(n-1) hops); on loopback as fast or faster (docs/collective.md). */
export const DEFAULT_ALGORITHM: AllReduceAlgorithm = 'shard-owner';

/** Every algorithm's name, in registry order. */
export const ALGORITHM_NAMES = Object.keys(ALGORITHMS) as readonly AllReduceAlgorithm[];

/** `name (summary)` for each algorithm, for help texts. */
export const algorithmSummaries = (): string =>
  ALGORITHM_NAMES.map((n) => `${n} (${ALGORITHMS[n].summary})`).join(', ');

export function isAllReduceAlgorithm(name: unknown): name is AllReduceAlgorithm {
  return typeof name === 'string' && Object.hasOwn(ALGORITHMS, name);
}

/** Why `name` is no algorithm, naming the known ones; `what` says where it came from. */
export const unknownAlgorithm = (what: string, name: unknown): string =>
  `${what} ${JSON.stringify(name)} is not an all-reduce algorithm: use one of ${ALGORITHM_NAMES.join(', ')}`;

/**
 * The algorithm a round of `members` runs: `name` (default DEFAULT_ALGORITHM), or the default when
 * the round is smaller than it needs (a ring of one is the shard-owner case). Throws
 * AllReduceInputError for a name not in the registry.
 */
export function algorithmFor(
  name: AllReduceAlgorithm | undefined,
  members: number,
): { readonly name: AllReduceAlgorithm; readonly algorithm: Algorithm } {
  const asked = name ?? DEFAULT_ALGORITHM;
  if (!isAllReduceAlgorithm(asked)) throw new AllReduceInputError(unknownAlgorithm('algorithm', asked));
  const runs = members < ALGORITHMS[asked].minMembers ? DEFAULT_ALGORITHM : asked;
  return { name: runs, algorithm: ALGORITHMS[runs] };
}

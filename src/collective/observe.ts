// A replica that does not contribute (the coordinator, DESIGN §2) receives the reduced vector of a
// round: it subscribes to exactly one copy of the final bytes, G bytes more through the server.
// Members must list it in `observers`, so they wait for its ready before sending. Which subjects
// carry the final bytes is the algorithm's to say (its `observer` plan); this file knows none.
import { type AllReduceAlgorithm, algorithmFor } from './algorithms.ts';
import { ChunkSet } from './chunk-set.ts';
import { AllReduceInputError, type MissingPart } from './errors.ts';
import { prepareFrameKey } from './frame-mac.ts';
import { Round } from './round.ts';
import { runReported } from './round-report.ts';
import { type RoundOptions, roundSpec } from './round-spec.ts';

export interface ObserveOptions extends RoundOptions {
  /** This observer's id; must be in `observers`. */
  readonly self: string;
  /** Element count of the vector the members reduce. */
  readonly length: number;
  /** The algorithm the members run. Default DEFAULT_ALGORITHM. */
  readonly algorithm?: AllReduceAlgorithm;
}

/** The reduced vector of the round, bitwise equal to every member's result; same errors as allReduceSum. */
export async function observeAllReduce(o: ObserveOptions): Promise<Float32Array> {
  await prepareFrameKey(o.frameKey);
  const spec = roundSpec(o, o.self, o.length);
  if (spec.selfIndex < spec.members.length) {
    throw new AllReduceInputError(`self ${o.self} is a member, not an observer: call allReduceSum`);
  }
  const { name, algorithm } = algorithmFor(o.algorithm, spec.members.length);
  const round = new Round(spec, algorithm.shards?.(spec));
  const result = new Float32Array(o.length);
  const received = new ChunkSet(
    round.layout,
    Array.from({ length: round.layout.shards }, (_, s) => s),
  );
  const plan = algorithm.observer(spec);
  for (const { subject, kind, shard } of plan.subscriptions) {
    round.subscribe(subject, kind, (h, payload) => {
      if ((shard !== undefined && h.shard !== shard) || !received.add(h.shard, h.chunk)) return;
      payload.copyTo(result, h.offset);
      if (received.complete) round.complete();
    });
  }
  round.missingData = (): MissingPart[] =>
    received
      .missing()
      .map(([shard, chunks]) => ({ member: plan.sender(shard), phase: 'gather', shard, chunks }));
  const start = () => {
    if (received.complete) round.complete();
  };
  await runReported(round, start, { algorithm: name, role: 'observer', onReport: o.onReport });
  return result;
}

// A replica that does not contribute (the coordinator, DESIGN §2) receives the reduced vector of a
// round: it subscribes to exactly one copy of the final bytes, G bytes more through the server.
// Members must list it in `observers`, so they wait for its ready before sending.
import { type AllReduceAlgorithm, effectiveAlgorithm } from './all-reduce.ts';
import { ChunkSet } from './chunk-set.ts';
import { AllReduceInputError, type MissingPart } from './errors.ts';
import { copyFloats, FrameKind } from './frame.ts';
import { Round } from './round.ts';
import { runReported } from './round-report.ts';
import { type RoundOptions, roundSpec } from './round-spec.ts';
import { dataSubject } from './subjects.ts';

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
  const spec = roundSpec(o, o.self, o.length);
  if (spec.selfIndex < spec.members.length) {
    throw new AllReduceInputError(`self ${o.self} is a member, not an observer: call allReduceSum`);
  }
  const round = new Round(spec);
  const { key, members } = spec;
  const n = members.length;
  const result = new Float32Array(o.length);
  const received = new ChunkSet(
    round.layout,
    members.map((_, s) => s),
  );
  const onFinal = (offset: number, payload: Uint8Array) => {
    copyFloats(payload, result, offset);
    if (received.complete) round.complete();
  };
  // Who sends the final bytes of `shard` on the subjects we listen to.
  let sender: (shard: number) => string;
  const algorithm = effectiveAlgorithm(o.algorithm, n);
  if (algorithm === 'ring') {
    // The link from the last member to the first carries every final shard except shard 1, which
    // member 0 completes and sends to member 1 (ring.ts).
    sender = (shard) => (shard === 1 ? members[0]! : members[n - 1]!);
    for (const subject of [dataSubject(key, 'ring-ag', '*', n - 1), dataSubject(key, 'ring-ag', 1, 0)]) {
      round.subscribe(subject, FrameKind.ringGather, (h, payload) => {
        if (received.add(h.shard, h.chunk)) onFinal(h.offset, payload);
      });
    }
  } else {
    sender = (shard) => members[shard]!;
    members.forEach((_, k) => {
      round.subscribe(dataSubject(key, 'so-ag', k, k), FrameKind.shardGather, (h, payload) => {
        if (h.shard === k && received.add(h.shard, h.chunk)) onFinal(h.offset, payload);
      });
    });
  }
  round.missingData = (): MissingPart[] =>
    received.missing().map(([shard, chunks]) => ({ member: sender(shard), phase: 'gather', shard, chunks }));
  const start = () => {
    if (received.complete) round.complete();
  };
  await runReported(round, start, { algorithm, role: 'observer', onReport: o.onReport });
  return result;
}

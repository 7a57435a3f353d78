// The all-reduce among members that live in one process (finetune's in-process worker): the same
// contract as allReduceSum / observeAllReduce — every member and observer gets the elementwise sum,
// added in member order ((x0 + x1) + x2) + … as the shard-owner algorithm does (docs/collective.md)
// — with no NATS in between. A round is (step, generation); an aborted caller leaves its round.
import { AllReduceCancelledError, AllReduceInputError } from './errors.ts';

export interface LocalRound {
  readonly step: number;
  readonly generation: number;
  /** Contributing member ids, sorted as `[...ids].sort()` does (the summation order). */
  readonly members: readonly string[];
  readonly signal?: AbortSignal;
}

interface Pending {
  readonly contributions: Map<string, Float32Array>;
  /** Each waiter takes its own copy of the sum (into its `into`, as allReduceSum's contract says). */
  readonly waiters: Set<{ take(sum: Float32Array): void }>;
}

export class InProcessCollective {
  private readonly rounds = new Map<string, Pending>();
  /** Results of the latest completed rounds, for an observer that asks after the members finished. */
  private readonly done = new Map<string, Float32Array>();

  constructor(private readonly runId: string) {}

  /** `self`'s contribution to the round; resolves with the sum (in `into` when given, else a new array). */
  allReduceSum(
    o: LocalRound & { readonly self: string; readonly data: Float32Array; readonly into?: Float32Array },
  ): Promise<Float32Array> {
    if (!o.members.includes(o.self)) {
      throw new AllReduceInputError(`self ${o.self} is not a member of [${o.members.join(', ')}]`);
    }
    if (o.into && o.into.length !== o.data.length) {
      throw new AllReduceInputError(`into holds ${o.into.length} values; data has ${o.data.length}`);
    }
    const p = this.pending(o);
    p.contributions.set(o.self, o.data.slice());
    const result = this.wait(o, p, o.into);
    this.completeIfWhole(o, p);
    return result;
  }

  /** The sum of the round, as a non-contributing replica receives it. */
  observe(o: LocalRound & { readonly length: number }): Promise<Float32Array> {
    const finished = this.done.get(key(o));
    if (finished) return Promise.resolve(finished.slice());
    return this.wait(o, this.pending(o));
  }

  private pending(o: LocalRound): Pending {
    const k = key(o);
    let p = this.rounds.get(k);
    if (!p) {
      p = { contributions: new Map(), waiters: new Set() };
      this.rounds.set(k, p);
    }
    return p;
  }

  private wait(o: LocalRound, p: Pending, into?: Float32Array): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      const waiter = {
        take: (sum: Float32Array) => {
          if (!into) return resolve(sum.slice());
          into.set(sum);
          resolve(into);
        },
      };
      if (o.signal?.aborted) {
        reject(new AllReduceCancelledError({ runId: this.runId, step: o.step, generation: o.generation }));
        return;
      }
      p.waiters.add(waiter);
      o.signal?.addEventListener(
        'abort',
        () => {
          if (!p.waiters.delete(waiter)) return;
          reject(new AllReduceCancelledError({ runId: this.runId, step: o.step, generation: o.generation }));
        },
        { once: true },
      );
    });
  }

  private completeIfWhole(o: LocalRound, p: Pending): void {
    if (!o.members.every((m) => p.contributions.has(m))) return;
    const sum = p.contributions.get(o.members[0]!)!.slice();
    for (const m of o.members.slice(1)) {
      const x = p.contributions.get(m)!;
      if (x.length !== sum.length) {
        throw new AllReduceInputError(
          `member ${m} contributed ${x.length} values, ${o.members[0]} ${sum.length}`,
        );
      }
      for (let i = 0; i < sum.length; i++) sum[i]! += x[i]!;
    }
    const k = key(o);
    this.rounds.delete(k);
    this.done.clear();
    this.done.set(k, sum);
    for (const w of p.waiters) w.take(sum);
  }
}

const key = (r: { step: number; generation: number }) => `${r.step}:${r.generation}`;

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerLink } from '../../src/coordinator/members.ts';
import {
  RETRY_FIRST_MS,
  RETRY_MAX_MS,
  ReduceRounds,
  retryWait,
} from '../../src/coordinator/reduce-rounds.ts';
import { type WorkerId, workerId } from '../../src/coordinator/step-ledger.ts';
import type { CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import type { FinalGradient } from '../../src/train/replica.ts';
import { recordEvents } from '../support/recorded-events.ts';

/** Rounds whose observation the test settles by hand, and links that keep what they are sent. */
function harness(firstGeneration = 1) {
  const recorded = recordEvents();
  const observed: {
    step: number;
    generation: number;
    members: readonly string[];
    signal: AbortSignal;
    nodes: readonly string[];
    resolve(sum: Float32Array): void;
    reject(e: Error): void;
  }[] = [];
  const rounds = new ReduceRounds({
    observerId: 'coordinator',
    algorithm: 'ring',
    maxGradNorm: 100,
    firstGeneration,
    events: recorded.events,
    observe: (step, generation, members, signal, nodes) =>
      new Promise((resolve, reject) =>
        observed.push({ step, generation, members, signal, nodes, resolve, reject }),
      ),
  });
  const sent = new Map<WorkerId, CoordinatorMessage[]>();
  const link = (id: string, nodeName?: string): WorkerLink => {
    const w = workerId(id);
    sent.set(w, []);
    return {
      id: w,
      send: (m) => sent.get(w)!.push(m),
      close: () => {},
      drop: () => {},
      ...(nodeName === undefined ? {} : { nodeName }),
    };
  };
  const ends = { reduced: [] as FinalGradient[], failed: [] as Error[] };
  const end = {
    reduced: (g: FinalGradient) => ends.reduced.push(g),
    failed: (e: Error) => ends.failed.push(e),
  };
  return { rounds, recorded, observed, sent, link, ends, end };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('all-reduce rounds', () => {
  it('waits 200 ms before the first retry, doubling up to 5 s', () => {
    const table: [number, number][] = [
      [0, RETRY_FIRST_MS],
      [1, 400],
      [4, 3200],
      [5, RETRY_MAX_MS],
      [30, RETRY_MAX_MS],
    ];
    for (const [failures, ms] of table) assert.equal(retryWait(failures), ms, `after ${failures} failures`);
  });

  it('gives every round a new generation, counting from the first one', () => {
    const h = harness(41);
    const gens = [0, 0, 1].map((step) => h.rounds.open(step, 4, [workerId('a')]).generation);
    assert.deepEqual(gens, [41, 42, 43]);
  });

  it("tells each member to reduce with the step's tokens, the observer and the algorithm, then observes", () => {
    const h = harness(5);
    const links = [h.link('a'), h.link('b')];
    const round = h.rounds.open(3, 12, [workerId('a'), workerId('b')]);
    h.rounds.start(round, links, h.end);
    for (const id of ['a', 'b']) {
      const body = h.sent.get(workerId(id))![0]!.body;
      assert.equal(body?.$case, 'reduceStart');
      assert.deepEqual(body.value, {
        step: 3,
        generation: 5,
        members: ['a', 'b'],
        totalSupervisedTokens: 12,
        observers: ['coordinator'],
        algorithm: 'ring',
        nodes: ['', ''],
      });
    }
    assert.deepEqual(
      h.observed.map((o) => [o.step, o.generation, [...o.members]]),
      [[3, 5, ['a', 'b']]],
    );
  });

  it("names each member's node, as its Hello said, to the members and the observer alike", () => {
    const h = harness(5);
    const round = h.rounds.open(3, 12, [workerId('a'), workerId('b'), workerId('c')]);
    h.rounds.start(round, [h.link('a', 'gpu-2'), h.link('b', 'gpu-1'), h.link('c')], h.end);
    for (const id of ['a', 'b', 'c']) {
      const body = h.sent.get(workerId(id))![0]!.body;
      assert.equal(body?.$case, 'reduceStart');
      assert.deepEqual(body.value.nodes, ['gpu-2', 'gpu-1', '']);
    }
    assert.deepEqual(h.observed[0]?.nodes, ['gpu-2', 'gpu-1', '']);
  });

  it('hands over the observed sum as the mean over the tokens', async () => {
    const h = harness();
    const round = h.rounds.open(0, 4, [workerId('a')]);
    h.rounds.start(round, [h.link('a')], h.end);
    h.observed[0]!.resolve(Float32Array.of(4, -8));
    await tick();
    assert.deepEqual([...h.ends.reduced[0]!.grad], [1, -2]);
    assert.equal(h.ends.reduced[0]!.norm, Math.sqrt(5));
  });

  it('reports an observation that failed', async () => {
    const h = harness();
    h.rounds.start(h.rounds.open(0, 4, [workerId('a')]), [h.link('a')], h.end);
    h.observed[0]!.reject(new Error('NATS went away'));
    await tick();
    assert.deepEqual(
      h.ends.failed.map((e) => e.message),
      ['NATS went away'],
    );
  });

  it('cancels an aborted round, tells its members still connected, and reports nothing of it after', async () => {
    const h = harness(9);
    const round = h.rounds.open(2, 4, [workerId('a'), workerId('gone')]);
    const a = h.link('a');
    h.rounds.start(round, [a, h.link('gone')], h.end);
    h.rounds.abort(round, 'member gone was lost', (id) => (id === a.id ? a : undefined));
    assert.equal(h.observed[0]!.signal.aborted, true);
    const last = h.sent.get(a.id)!.at(-1)!.body;
    assert.equal(last?.$case, 'stepAbort');
    assert.deepEqual(last.value, { step: 2, generation: 9, reason: 'member gone was lost' });
    assert.equal(h.sent.get(workerId('gone'))!.length, 1, 'only the ReduceStart it got before');
    const e = h.recorded.records.find((r) => r.name === 'reduce_aborted')!;
    assert.deepEqual(e.fields, {
      step: 2,
      generation: 9,
      reason: 'member gone was lost',
      members: ['a', 'gone'],
    });
    h.observed[0]!.resolve(Float32Array.of(1, 1));
    await tick();
    assert.deepEqual(h.ends, { reduced: [], failed: [] });
  });

  it('waits longer after each failure in a row and the shortest time again after a commit', async () => {
    const h = harness();
    let again = 0;
    h.rounds.retry(0, () => again++);
    h.rounds.retry(0, () => {});
    h.rounds.committed(h.rounds.open(0, 4, [workerId('a')]));
    h.rounds.retry(1, () => {});
    assert.deepEqual(
      h.recorded.records
        .filter((r) => r.name === 'reduce_retry')
        .map((r) => [r.fields.step, r.fields.wait_ms]),
      [
        [0, 200],
        [0, 400],
        [1, 200],
      ],
    );
    await new Promise((r) => setTimeout(r, RETRY_FIRST_MS + 50));
    assert.equal(again, 1, 'the retry ran once its wait was over');
  });
});

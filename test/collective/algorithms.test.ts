import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  ALGORITHM_NAMES,
  type AllReduceAlgorithm,
  AllReduceInputError,
  allReduceSum,
  DEFAULT_ALGORITHM,
  isAllReduceAlgorithm,
  observeAllReduce,
  type RoundReport,
  unknownAlgorithm,
} from '../../src/collective/index.ts';
import { type NatsServer, startNats } from '../support/nats.ts';
import { bytesOf, connectMembers, randomGradients } from './members.ts';

// The registry is the one list of algorithms (src/collective/algorithms.ts): a name it does not hold
// is refused, naming the ones it does, wherever it comes from; none is silently replaced.

describe('all-reduce algorithm registry', () => {
  let server: NatsServer;
  let conns: NatsConnection[] = [];
  before(async () => {
    server = await startNats();
    conns = await connectMembers(server.url, 2);
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await server?.stop();
  });

  it('holds shard-owner (the default), ring and hierarchical', () => {
    assert.deepEqual([...ALGORITHM_NAMES].sort(), ['hierarchical', 'ring', 'shard-owner']);
    assert.equal(DEFAULT_ALGORITHM, 'shard-owner');
  });

  it('knows a name only if it is registered (not an Object.prototype key, not another case)', () => {
    const table: readonly [unknown, boolean][] = [
      ['shard-owner', true],
      ['ring', true],
      ['hierarchical', true],
      ['', false],
      ['Ring', false],
      [' ring', false],
      ['tree', false],
      ['toString', false],
      ['constructor', false],
      ['__proto__', false],
      ['hasOwnProperty', false],
      [undefined, false],
      [null, false],
      [1, false],
      [['ring'], false],
    ];
    for (const [name, known] of table) assert.equal(isAllReduceAlgorithm(name), known, String(name));
  });

  it('words an unknown name as the input, the name and every known algorithm', () => {
    assert.equal(
      unknownAlgorithm('--allreduce_algorithm', 'tree'),
      '--allreduce_algorithm "tree" is not an all-reduce algorithm: use one of shard-owner, ring, hierarchical',
    );
  });

  it('refuses an unknown algorithm in allReduceSum and observeAllReduce instead of running another', async () => {
    const round = { runId: 'reg', step: 1, generation: 0, members: ['m0'], timeoutMs: 2000 };
    const tree = 'tree' as AllReduceAlgorithm; // as an untyped caller would pass it
    const reports: RoundReport[] = [];
    const refused = (e: unknown) =>
      e instanceof AllReduceInputError && /"tree" is not an all-reduce algorithm: use one of/.test(e.message);
    await assert.rejects(
      allReduceSum({
        ...round,
        nc: conns[0]!,
        self: 'm0',
        data: Float32Array.of(1),
        algorithm: tree,
        onReport: (r) => reports.push(r),
      }),
      refused,
    );
    await assert.rejects(
      observeAllReduce({ ...round, nc: conns[1]!, observers: ['o'], self: 'o', length: 1, algorithm: tree }),
      refused,
    );
    assert.deepEqual(reports, [], 'no round ran');
  });

  for (const algorithm of ALGORITHM_NAMES) {
    // A ring needs two members; a round of one runs the default, on member and observer alike.
    const ran = algorithm === 'ring' ? DEFAULT_ALGORITHM : algorithm;
    it(`runs a one-member round asked for ${algorithm} as ${ran}, member and observer alike`, async () => {
      const [x] = randomGradients(1, 300, 11);
      const reports: RoundReport[] = [];
      const round = {
        runId: 'reg',
        step: 2,
        generation: ALGORITHM_NAMES.indexOf(algorithm),
        members: ['solo'],
        observers: ['o'],
        timeoutMs: 5000,
        algorithm,
        onReport: (r: RoundReport) => reports.push(r),
      };
      const [sum, seen] = await Promise.all([
        allReduceSum({ ...round, nc: conns[0]!, self: 'solo', data: x! }),
        observeAllReduce({ ...round, nc: conns[1]!, self: 'o', length: x!.length }),
      ]);
      assert.deepEqual(bytesOf(sum), bytesOf(x!));
      assert.deepEqual(bytesOf(seen), bytesOf(x!));
      assert.deepEqual(reports.map((r) => [r.role, r.algorithm]).sort(), [
        ['member', ran],
        ['observer', ran],
      ]);
    });
  }
});

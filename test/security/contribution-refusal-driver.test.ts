import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerLink } from '../../src/coordinator/members.ts';
import { workerId } from '../../src/coordinator/step-ledger.ts';
import type { CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { MicroBatchKind } from '../../src/protocol/messages.ts';
import { recordEvents } from '../support/recorded-events.ts';
import { testDriver } from '../support/test-driver.ts';

// The product's step driver, with the shard owners' measures as the members send them: a member
// whose contribution they condemn is refused, its micro-batch recomputed by the other, it is
// quarantined, and the retried round runs without it.
describe('refused contributions (step driver)', () => {
  it('loses and quarantines a lying contributor; its micro-batch goes to the other; the retry excludes it', async () => {
    const recorded = recordEvents();
    const { driver, rounds } = testDriver(recorded.events, 'run-a', { contributionNormFactor: 1000 });
    const sent = new Map<string, CoordinatorMessage[]>();
    const ended = new Map<string, string>();
    for (const id of ['a', 'b']) {
      sent.set(id, []);
      const link: WorkerLink = {
        id: workerId(id),
        send: (m) => sent.get(id)!.push(m),
        close: (why) => ended.set(id, `closed: ${why}`),
        drop: (why) => ended.set(id, `dropped: ${why}`),
      };
      driver.join(link);
      driver.onReady(link.id, 'fp');
    }
    // Both are synced before dealing begins: a worker synced after it is dealt from the next step.
    for (const id of ['a', 'b']) driver.onCredit(workerId(id), 1);
    const of = (id: string, c: string) => sent.get(id)!.filter((m) => m.body?.$case === c);
    const dealt = (id: string) =>
      of(id, 'microBatch').map((m) => (m.body?.$case === 'microBatch' ? m.body.value.id : -1));
    const report = (id: string, mbId: number) =>
      driver.onResult(workerId(id), {
        id: mbId,
        step: 0,
        kind: MicroBatchKind.MICRO_BATCH_KIND_TRAIN,
        lossSum: 1,
        supervisedTokens: 1,
        gradNorm: 1,
      });
    assert.deepEqual([...dealt('a'), ...dealt('b')].sort(), [10, 11], 'one micro-batch each');
    for (const id of ['a', 'b']) for (const m of dealt(id)) report(id, m);
    const start = of('a', 'reduceStart')[0]?.body;
    assert.equal(start?.$case, 'reduceStart');
    const generation = start.value.generation;
    assert.deepEqual(start.value.members, ['a', 'b']);
    // Each owner's measures: a's contribution has norm sqrt(0.25 + 0.25) (below the 1 it reported),
    // b's sqrt(0.5 + 1e6) ~ 1000, far above the 1 it reported.
    const answer = (id: string, sq: [number, number]) =>
      driver.onReduceResult(workerId(id), {
        step: 0,
        generation,
        checksum: 'c',
        gradNorm: 1,
        stateChecksum: 's',
        error: '',
        blame: '',
        contributions: [
          { member: 'a', sumSquares: sq[0] },
          { member: 'b', sumSquares: sq[1] },
        ],
      });
    // The coordinator's own replica has the sum: only the measures can stop the commit now.
    rounds[0]!.resolve(Float32Array.of(0.5, -0.5, 0.25, 0));
    await new Promise((r) => setTimeout(r, 0));
    answer('a', [0.25, 0.5]);
    answer('b', [0.25, 1e6]);
    const refused = recorded.records.filter((r) => r.name === 'contribution_refused');
    assert.deepEqual(
      refused.map((r) => [r.fields.worker, r.fields.kind]),
      [['b', 'lying_norm']],
    );
    assert.ok(Math.abs(Number(refused[0]!.fields.measured_norm) - Math.sqrt(0.5 + 1e6)) < 1e-9);
    assert.match(ended.get('b') ?? '', /^dropped: contribution refused: .*quarantined for 10 s/);
    assert.equal(ended.get('a'), undefined);
    const q = recorded.records.filter((r) => r.name === 'worker_quarantined');
    assert.deepEqual(
      q.map((r) => [r.fields.worker, r.fields.reason, r.fields.offences, r.fields.quarantine_ms]),
      [['b', 'contribution', 1, 10_000]],
    );
    assert.ok((driver.quarantinedFor('b') ?? 0) > 9_000, 'its Hello is refused for now');
    // The round is aborted; b's micro-batch goes to a, and the next round is a's alone.
    assert.equal(of('a', 'stepAbort').length, 1);
    const bHad = dealt('b')[0]!;
    assert.deepEqual(dealt('a').at(-1), bHad, `a recomputes micro-batch ${bHad}`);
    report('a', bHad);
    const retry = of('a', 'reduceStart').at(-1)?.body;
    assert.equal(retry?.$case, 'reduceStart');
    assert.ok(retry.value.generation > generation);
    assert.deepEqual(retry.value.members, ['a']);
  });
});

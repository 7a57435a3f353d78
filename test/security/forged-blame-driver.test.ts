import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_UNVERIFIED_PER_STEP } from '../../src/coordinator/accusations.ts';
import type { WorkerLink } from '../../src/coordinator/members.ts';
import { workerId } from '../../src/coordinator/step-ledger.ts';
import type { CoordinatorMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { MicroBatchKind } from '../../src/protocol/messages.ts';
import { recordEvents } from '../support/recorded-events.ts';
import { testDriver } from '../support/test-driver.ts';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

/** The product's step driver with three synced workers a, b and x (the insider); step 0's round open. */
function threeWorkers() {
  const recorded = recordEvents();
  const { driver, rounds } = testDriver(recorded.events);
  const sent = new Map<string, CoordinatorMessage[]>();
  const ended = new Map<string, string>();
  for (const id of ['a', 'b', 'x']) {
    sent.set(id, []);
    const link: WorkerLink = {
      id: workerId(id),
      send: (m) => sent.get(id)!.push(m),
      close: (why) => ended.set(id, `closed: ${why}`),
      drop: (why) => ended.set(id, `dropped: ${why}`),
    };
    driver.join(link);
    driver.onReady(link.id, 'fp');
    driver.onCredit(link.id, 1);
  }
  // Micro-batches 10 and 11 went to two of them; report both so the all-reduce opens.
  for (const [id, msgs] of sent) {
    for (const m of msgs) {
      if (m.body?.$case !== 'microBatch') continue;
      const mb = m.body.value;
      driver.onResult(workerId(id), {
        id: mb.id,
        step: 0,
        kind: MicroBatchKind.MICRO_BATCH_KIND_TRAIN,
        lossSum: 1,
        supervisedTokens: 1,
        gradNorm: 1,
      });
    }
  }
  const generation = () => {
    const starts = [...sent.get('a')!].filter((m) => m.body?.$case === 'reduceStart');
    const last = starts.at(-1)?.body;
    return last?.$case === 'reduceStart' ? last.value.generation : undefined;
  };
  const blame = (accused: string, gen: number) =>
    driver.onReduceResult(workerId('x'), {
      step: 0,
      generation: gen,
      checksum: '',
      gradNorm: 0,
      stateChecksum: '',
      error: `bad data from ${accused}`,
      blame: accused,
      contributions: [],
    });
  return { driver, recorded, ended, generation, blame, rounds };
}

describe('blame only with evidence (step driver)', () => {
  it('refuses the accuser of a blame with an invented generation, and keeps the accused', () => {
    const h = threeWorkers();
    assert.ok(h.generation() !== undefined, 'the all-reduce of step 0 opened');
    h.blame('a', 900_010);
    h.blame('b', 900_011);
    assert.equal(h.ended.get('a'), undefined);
    assert.equal(h.ended.get('b'), undefined);
    assert.match(h.ended.get('x') ?? '', /^dropped: .*falsely: generation 900010 was never opened/);
    const refused = h.recorded.records.filter((r) => r.name === 'result_refused');
    assert.deepEqual(
      refused.map((r) => r.fields.worker),
      ['x'],
    );
    assert.ok(h.driver.members.has('a') && h.driver.members.has('b') && !h.driver.members.has('x'));
  });

  it('penalises nobody for an unverifiable blame of the open round, and the accuser when it keeps at it', async () => {
    const h = threeWorkers();
    for (let i = 1; i <= MAX_UNVERIFIED_PER_STEP; i++) {
      const g = h.generation()!;
      h.blame(i % 2 ? 'a' : 'b', g);
      assert.equal(h.ended.get('a'), undefined, `blame ${i}`);
      assert.equal(h.ended.get('b'), undefined, `blame ${i}`);
      if (i < MAX_UNVERIFIED_PER_STEP) {
        assert.equal(h.ended.get('x'), undefined, `blame ${i}: the accuser is not refused yet`);
        // The accuser did not reduce: the round ends (the observer hears its abort) and is retried.
        h.rounds.at(-1)!.reject(new Error('member x aborted the round'));
        await tick(250 * 2 ** (i - 1)); // the round failed; the retry opens after its backoff
        assert.ok(h.generation()! > g, 'a new round opened');
      }
    }
    assert.match(h.ended.get('x') ?? '', /stopped 3 rounds of step 0 with blames/);
    const ignored = h.recorded.records.filter((r) => r.name === 'blame_ignored');
    assert.equal(ignored.length, MAX_UNVERIFIED_PER_STEP);
  });
});

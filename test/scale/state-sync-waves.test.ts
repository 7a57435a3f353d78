import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerLink } from '../../src/coordinator/members.ts';
import { SYNCS_IN_FLIGHT } from '../../src/coordinator/replica-sync.ts';
import { workerId } from '../../src/coordinator/step-ledger.ts';
import { silentEvents } from '../../src/events/events.ts';
import type { CoordinatorMessage } from '../../src/protocol/wire.ts';
import { testDriver } from '../support/test-driver.ts';

// A state sync is the adapter and both AdamW moments, serialized per stream: 256 workers joining at
// once must not make the coordinator hold 256 of them. It syncs SYNCS_IN_FLIGHT at a time; a
// worker's first credit (the state arrived) or its loss lets the next one in.
describe('state sync at scale', () => {
  function cluster(n: number) {
    const { driver } = testDriver(silentEvents);
    const inbox = new Map<string, CoordinatorMessage[]>();
    for (let i = 0; i < n; i++) {
      const id = workerId(`w${String(i).padStart(3, '0')}`);
      const got: CoordinatorMessage[] = [];
      inbox.set(id, got);
      const link: WorkerLink = { id, send: (m) => got.push(m), close: () => {}, drop: () => {} };
      driver.join(link);
    }
    for (const id of inbox.keys()) driver.onReady(workerId(id), 'fp');
    const synced = () =>
      [...inbox].filter(([, msgs]) => msgs.some((m) => m.body?.$case === 'stateSync')).map(([id]) => id);
    return { driver, synced, inbox };
  }

  it(`sends the state to ${SYNCS_IN_FLIGHT} of 256 ready workers, then one more per answer`, () => {
    const { driver, synced } = cluster(256);
    const first = synced();
    assert.equal(first.length, SYNCS_IN_FLIGHT);
    driver.onCredit(workerId(first[0]!), 2);
    assert.equal(synced().length, SYNCS_IN_FLIGHT + 1);
    // A credit from a worker already answered frees nothing more.
    driver.onCredit(workerId(first[0]!), 1);
    assert.equal(synced().length, SYNCS_IN_FLIGHT + 1);
    driver.lose(workerId(first[1]!), 'test: its stream closed');
    assert.equal(synced().length, SYNCS_IN_FLIGHT + 2);
  });

  it('syncs all 256 in the end, each exactly once, as the answers come', () => {
    const { driver, synced, inbox } = cluster(256);
    const answered = new Set<string>();
    for (let guard = 0; answered.size < 256 && guard < 300; guard++) {
      for (const id of synced()) {
        if (answered.has(id)) continue;
        answered.add(id);
        driver.onCredit(workerId(id), 2);
      }
    }
    assert.equal(answered.size, 256);
    assert.equal(driver.members.count('synced'), 256);
    assert.equal(driver.members.count('ready'), 0);
    for (const [id, msgs] of inbox)
      assert.equal(msgs.filter((m) => m.body?.$case === 'stateSync').length, 1, `${id} got one state`);
  });
});

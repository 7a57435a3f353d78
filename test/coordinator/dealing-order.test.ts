import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Member, Members, type WorkerLink } from '../../src/coordinator/members.ts';
import { StepLedger, type WorkerId, workerId } from '../../src/coordinator/step-ledger.ts';

// The dispatch path keeps two indexes so a deal does not scan the step or every replica (docs/scale.md,
// "What was measured and fixed"): the ledger's queue (the next micro-batch taken from its end) and
// the members holding credit. Each is checked, after every operation of a seeded random sequence,
// against the plain definition it replaces.

/** mulberry32: a small seeded generator, so a failure replays. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const link = (id: string, maxCredits: number): WorkerLink => ({
  id: workerId(id),
  send: () => {},
  close: () => {},
  drop: () => {},
  maxCredits,
});

describe('dealing indexes', () => {
  it('deals micro-batches in the order of a plain queue (requeued and revoked ones first, in id order)', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rnd = random(seed);
      const ids = Array.from({ length: 200 }, (_, i) => i * 3);
      const ledger = new StepLedger(0, ids);
      // The definition: a FIFO whose requeued ids go to its front, sorted.
      const reference = [...ids];
      const held = new Map<WorkerId, number[]>();
      const workers = ['a', 'b', 'c', 'd'].map(workerId);
      for (let op = 0; op < 600; op++) {
        const w = workers[Math.floor(rnd() * workers.length)]!;
        const mine = held.get(w) ?? [];
        const r = rnd();
        if (r < 0.55) {
          const got = ledger.assignNext(w);
          assert.equal(got, reference.shift(), `seed ${seed} op ${op}: assignNext`);
          if (got !== undefined) held.set(w, [...mine, got]);
        } else if (r < 0.8 && mine.length > 0) {
          const id = mine[Math.floor(rnd() * mine.length)]!;
          assert.ok(ledger.complete(w, id, 1, 1));
          held.set(
            w,
            mine.filter((x) => x !== id),
          );
        } else if (r < 0.9) {
          const back = mine.filter(() => rnd() < 0.5);
          assert.deepEqual(ledger.revoke(w, back), back);
          reference.unshift(...[...back].sort((x, y) => x - y));
          held.set(
            w,
            mine.filter((x) => !back.includes(x)),
          );
        } else {
          const back = ledger.releaseWorker(w);
          reference.unshift(...back);
          held.set(w, []);
        }
        assert.equal(ledger.pending, reference.length, `seed ${seed} op ${op}: pending`);
      }
    }
  });

  it('lists the synced members with credit as a filter of every member would, in id order', () => {
    for (const seed of [11, 12, 13]) {
      const rnd = random(seed);
      const members = new Members(() => 0);
      const names = Array.from({ length: 12 }, (_, i) => `w${String(i).padStart(2, '0')}`);
      const definition = (step: number) =>
        members
          .all()
          .filter((m) => m.phase === 'synced' && m.credits > 0 && m.dealFrom <= step)
          .sort((a, b) => (a.link.id < b.link.id ? -1 : 1))
          .map((m) => m.link.id);
      // A session that was replaced or removed: its old Member object must not be dealt to.
      const stale: Member[] = [];
      for (let op = 0; op < 800; op++) {
        const id = workerId(names[Math.floor(rnd() * names.length)]!);
        const m = members.get(id);
        const r = rnd();
        if (!m || r < 0.08) {
          if (m) stale.push(m);
          members.add(link(id, 1 + Math.floor(rnd() * 4)));
        } else if (r < 0.14) {
          stale.push(m);
          members.remove(id);
        } else if (r < 0.3) {
          m.phase = rnd() < 0.7 ? 'synced' : 'ready';
          m.dealFrom = Math.floor(rnd() * 3);
        } else if (r < 0.65) {
          members.grant(m, 1 + Math.floor(rnd() * 3), Math.floor(rnd() * 3));
        } else if (m.credits > 0) {
          members.take(m);
        } else if (stale.length > 0) {
          const old = stale[Math.floor(rnd() * stale.length)]!;
          const before = old.credits;
          const current = members.get(old.link.id);
          const currentBefore = current?.credits;
          members.grant(old, 2, 0);
          assert.equal(old.credits, before, 'a stale member got credits');
          assert.equal(current?.credits, currentBefore, 'a stale session changed the current one');
        }
        const step = Math.floor(rnd() * 3);
        assert.deepEqual(
          members.syncedWithCredit(step).map((x) => x.link.id),
          definition(step),
          `seed ${seed} op ${op}`,
        );
      }
    }
  });
});

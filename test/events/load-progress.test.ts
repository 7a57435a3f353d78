// model_loading events: a slow load reports at most one event per interval (percent, elapsed), a
// fast one none, and the last tensor never (model_loaded follows it).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadProgress } from '../../src/events/load-progress.ts';
import { recordEvents } from '../support/recorded-events.ts';

describe('load progress', () => {
  it('reports a slow load once per interval with its share and the time so far', () => {
    const { events, records } = recordEvents();
    let now = 1000;
    const progress = loadProgress(events, 'mpt-7b', { everyMs: 10_000, now: () => now });
    // 194 tensors (MPT-7B: 32 blocks of 6, wte, norm_f), one every 800 ms
    for (let i = 1; i <= 194; i++) {
      now += 800;
      progress(i, 194);
    }
    assert.ok(records.every((r) => r.name === 'model_loading' && r.level === 'info'));
    // 155.2 s of loading: 10 s pass every 13 tensors (10.4 s), so tensors 13, 26, ..., 182; the
    // 194th is the end, which model_loaded reports.
    const loaded = records.map((r) => r.fields.loaded);
    assert.deepEqual(
      loaded,
      Array.from({ length: 14 }, (_, k) => 13 * (k + 1)),
    );
    const first = records[0];
    assert.deepEqual(first?.fields, { loaded: 13, expected: 194, percent: 6, elapsed_s: 10 });
    assert.equal(first?.text, 'loading mpt-7b: 13 of 194 weight tensors (6%) in 10 s');
  });

  it('says nothing about a load that is done before the first interval', () => {
    const { events, records } = recordEvents();
    let now = 0;
    const progress = loadProgress(events, 'tiny', { everyMs: 10_000, now: () => now });
    for (let i = 1; i <= 14; i++) {
      now += 50;
      progress(i, 14);
    }
    assert.equal(records.length, 0);
  });
});

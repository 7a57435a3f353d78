import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WarningLimiter } from '../../src/events/warning-limiter.ts';
import { recordEvents } from '../support/recorded-events.ts';

function limiter() {
  let now = 0;
  const rec = recordEvents();
  const l = new WarningLimiter(rec.events, { perWindow: 3, windowMs: 10_000, now: () => now, timers: false });
  const said = (name: string) => rec.records.filter((r) => r.name === name);
  return { l, rec, said, at: (ms: number) => (now = ms) };
}

describe('rate-limited warnings', () => {
  it('writes the first of a window and counts the rest in one line when the window ends', () => {
    const { l, said, at } = limiter();
    for (let i = 0; i < 20_002; i++) l.warn('auth_refused', `refused ${i}`);
    assert.equal(said('auth_refused').length, 3);
    at(9_999);
    l.flushDue();
    assert.equal(said('warnings_suppressed').length, 0, 'the window is still open');
    at(10_000);
    l.flushDue();
    const [summary] = said('warnings_suppressed');
    assert.equal(summary?.text, '... and 19,999 more auth_refused in the last 10 s');
    assert.equal(summary?.fields.count, 19_999);
  });

  it('keeps a window per event name, and a new window writes again', () => {
    const { l, said, at } = limiter();
    for (let i = 0; i < 5; i++) l.warn('auth_refused', 'a');
    for (let i = 0; i < 4; i++) l.warn('tls_refused', 't');
    assert.equal(said('auth_refused').length, 3);
    assert.equal(said('tls_refused').length, 3);
    at(10_000);
    l.warn('auth_refused', 'again'); // closes the old window (says its 2) and opens a new one
    assert.equal(said('auth_refused').length, 4);
    assert.deepEqual(
      said('warnings_suppressed').map((r) => r.fields.count),
      [2],
    );
    l.flush();
    assert.deepEqual(
      said('warnings_suppressed').map((r) => [r.fields.suppressed_event, r.fields.count]),
      [
        ['auth_refused', 2],
        ['tls_refused', 1],
      ],
    );
  });

  it('says nothing more when nothing was suppressed', () => {
    const { l, said } = limiter();
    l.warn('auth_refused', 'one');
    l.flush();
    assert.equal(said('warnings_suppressed').length, 0);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_QUARANTINE_MS, Quarantine } from '../../src/coordinator/quarantine.ts';
import { PROTOCOL_VERSION, refusalOf } from '../../src/protocol/handshake.ts';

describe('quarantine of a hoarder', () => {
  it('keeps a worker out for the deadline it missed, doubling each time, up to the cap', () => {
    const now = 0;
    const q = new Quarantine(() => now);
    assert.deepEqual(
      [1, 2, 3, 4].map(() => q.impose('h', 3_000)),
      [
        { offences: 1, ms: 3_000 },
        { offences: 2, ms: 6_000 },
        { offences: 3, ms: 12_000 },
        { offences: 4, ms: 24_000 },
      ],
    );
    for (let i = 0; i < 20; i++) q.impose('h', 3_000);
    assert.equal(q.impose('h', 3_000).ms, MAX_QUARANTINE_MS);
    assert.equal(q.remaining('other'), undefined);
  });

  it('lets it back exactly when its quarantine is over', () => {
    let now = 1_000;
    const q = new Quarantine(() => now);
    q.impose('h', 5_000);
    now = 5_999;
    assert.equal(q.remaining('h'), 1);
    now = 6_000;
    assert.equal(q.remaining('h'), undefined);
  });

  it("refuses a quarantined worker's Hello as retryable, saying how long is left", () => {
    const hello = {
      protocolVersion: PROTOCOL_VERSION,
      runId: '',
      workerId: 'h',
      capabilities: { backend: 'test', deviceMemoryBytes: 0, maxInFlight: 1, nodeName: '' },
    };
    const refused = refusalOf(hello, 'r', new Set(), {
      quarantined: (id) => (id === 'h' ? 4_200 : undefined),
    });
    assert.equal(refused?.retryable, true);
    assert.match(refused?.reason ?? '', /quarantined for 5 s more/);
    assert.equal(
      refusalOf({ ...hello, workerId: 'ok' }, 'r', new Set(), { quarantined: () => undefined }),
      undefined,
    );
  });
});

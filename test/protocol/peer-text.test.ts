import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PEER_TEXT_MAX, peerText } from '../../src/protocol/peer-text.ts';

describe('peer text', () => {
  it('escapes newlines and control characters, so a peer cannot forge a log line', () => {
    const s = peerText('w0\n{"level":"info","event":"run_finished"}\r\u0007\u2028');
    for (const c of ['\n', '\r', '\u0007', '\u2028']) assert.ok(!s.includes(c), JSON.stringify(c));
    assert.equal(s, 'w0\\n{\\"level\\":\\"info\\",\\"event\\":\\"run_finished\\"}\\r\\u0007\\u2028');
  });

  it('cuts an 8 MB id to a bound and says how much was cut', () => {
    const s = peerText('x'.repeat(8 * 2 ** 20));
    assert.ok(s.length < PEER_TEXT_MAX + 32);
    assert.match(s, /…\(\+8388480 chars\)$/);
  });

  it('leaves an ordinary id as it is', () => {
    assert.equal(peerText('worker-3.pod'), 'worker-3.pod');
  });
});

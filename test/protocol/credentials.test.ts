import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkRunToken,
  mintWorkerToken,
  newNatsPassword,
  newRunToken,
  verifyCredential,
} from '../../src/protocol/credentials.ts';

const run = newRunToken();
const other = newRunToken();
const bearer = (t: string) => `Bearer ${t}`;

describe('stream credentials', () => {
  it('names the worker a worker token was minted for', () => {
    const v = verifyCredential(bearer(mintWorkerToken(run, 'w0.pod')), run, undefined);
    assert.deepEqual(v, { ok: true, workerId: 'w0.pod', via: 'worker-token' });
  });

  it('refuses another run’s token, a changed id, a changed mac and no token', () => {
    const t = mintWorkerToken(run, 'w0');
    for (const bad of [
      bearer(mintWorkerToken(other, 'w0')),
      bearer(t.replace(/^w0/, 'w1')),
      bearer(`${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}`),
      bearer(other),
      'Basic abc',
      undefined,
    ]) {
      assert.equal(verifyCredential(bad, run, undefined).ok, false, String(bad));
    }
  });

  it('takes the run token only with a verified client certificate, which names the worker', () => {
    assert.equal(verifyCredential(bearer(run), run, undefined).ok, false);
    assert.deepEqual(verifyCredential(bearer(run), run, 'w3'), {
      ok: true,
      workerId: 'w3',
      via: 'client-certificate',
    });
  });

  it('refuses a worker token and a client certificate that name different workers', () => {
    assert.equal(verifyCredential(bearer(mintWorkerToken(run, 'w0')), run, 'w1').ok, false);
  });

  it('refuses a run token that is too short to be a secret, naming where it came from', () => {
    assert.throws(() => checkRunToken('hunter2', '--run_token_file t'), /--run_token_file t/);
    assert.equal(checkRunToken(`${run}\n`, 'x'), run);
  });
});

describe('NATS passwords', () => {
  it('start with a letter and hold only letters and digits, so nats-server reads them from its environment as strings', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const p = newNatsPassword();
      assert.match(p, /^[A-Za-z][A-Za-z0-9]{40,}$/);
      seen.add(p);
    }
    assert.equal(seen.size, 500);
  });
});

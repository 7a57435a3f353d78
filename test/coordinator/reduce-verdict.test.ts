import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judge } from '../../src/coordinator/reduce-verdict.ts';
import { type WorkerId, workerId } from '../../src/coordinator/step-ledger.ts';
import type { ReduceResult } from '../../src/proto/lora_mpt/v1/coordinator.ts';

const own = { gradient: 'g', state: 's' };
const ok = (over: Partial<ReduceResult> = {}): ReduceResult => ({
  step: 0,
  generation: 1,
  checksum: 'g',
  gradNorm: 1,
  stateChecksum: 's',
  error: '',
  blame: '',
  contributions: [],
  ...over,
});
const results = (entries: Record<string, ReduceResult>) =>
  new Map<WorkerId, ReduceResult>(Object.entries(entries).map(([k, v]) => [workerId(k), v]));

describe('reduce verdict', () => {
  it('commits when every member reduced the same gradient from the same state', () => {
    assert.deepEqual(judge(results({ a: ok(), b: ok() }), own), { kind: 'commit' });
  });

  it('names the members whose round failed, with their errors', () => {
    const v = judge(results({ a: ok(), b: ok({ error: 'timeout', checksum: '' }) }), own);
    assert.equal(v.kind, 'failed');
    assert.deepEqual(v.kind === 'failed' && [...v.errors], [['b', 'timeout']]);
  });

  it('prefers a failure over a checksum mismatch (a failed round proves nothing)', () => {
    const v = judge(results({ a: ok({ checksum: 'x' }), b: ok({ error: 'disconnected' }) }), own);
    assert.equal(v.kind, 'failed');
  });

  it('names the members whose reduced gradient differs from the coordinator’s', () => {
    const v = judge(results({ a: ok(), b: ok({ checksum: 'x' }) }), own);
    assert.deepEqual(v, { kind: 'gradient-mismatch', workers: ['b'] });
  });

  it('calls a member with the right gradient but another state diverged', () => {
    const v = judge(results({ a: ok({ stateChecksum: 'old' }), b: ok() }), own);
    assert.deepEqual(v, { kind: 'diverged', workers: ['a'] });
  });

  it('reports a gradient mismatch before a state divergence', () => {
    const v = judge(results({ a: ok({ stateChecksum: 'old' }), b: ok({ checksum: 'x' }) }), own);
    assert.deepEqual(v, { kind: 'gradient-mismatch', workers: ['b'] });
  });
});

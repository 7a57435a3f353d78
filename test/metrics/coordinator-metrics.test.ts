import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerLink } from '../../src/coordinator/members.ts';
import { OFFENCES_BEFORE_DROP } from '../../src/coordinator/offences.ts';
import { workerId } from '../../src/coordinator/step-ledger.ts';
import { silentEvents } from '../../src/events/events.ts';
import { tapEvents } from '../../src/events/tap.ts';
import { createCoordinatorMetrics } from '../../src/metrics/coordinator-metrics.ts';
import { type CoordinatorMessage, MicroBatchKind } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { finalizeGradient } from '../../src/train/replica.ts';
import { testDriver } from '../support/test-driver.ts';

// The coordinator's metrics follow the step driver's own events (tapped as the status page taps
// them): a real driver runs, the test plays the workers, and the values read are the ones the
// driver's events produced.

function harness() {
  const metrics = createCoordinatorMetrics('run-m');
  const { driver, replica, rounds } = testDriver(tapEvents(silentEvents, metrics.record), 'run-m');
  const sent: CoordinatorMessage[] = [];
  const connect = (id: string, credits = 2): WorkerLink => {
    const link: WorkerLink = { id: workerId(id), send: (m) => sent.push(m), close: () => {}, drop: () => {} };
    driver.join(link);
    driver.onReady(link.id, 'fp');
    driver.onCredit(link.id, credits);
    return link;
  };
  const report = (link: WorkerLink, id: number, lossSum = 1) =>
    driver.onResult(link.id, {
      id,
      step: 0,
      kind: MicroBatchKind.MICRO_BATCH_KIND_TRAIN,
      lossSum,
      supervisedTokens: 1,
      gradNorm: 1,
    });
  /** The value of `name` (with `labels`) as /metrics would show it now. */
  const value = async (name: string, labels: Record<string, string> = {}) => {
    const got = await metrics.registry.getSingleMetric(name)!.get();
    const v = got.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
    return v?.value;
  };
  return { driver, replica, rounds, connect, report, value, sent };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('coordinator metrics from the step driver’s events', () => {
  it('counts micro-batches as they are dealt and counted', async () => {
    const h = harness();
    const w0 = h.connect('w0');
    assert.equal(await h.value('lora_mpt_microbatches_total', { event: 'assigned' }), 2);
    assert.equal(await h.value('lora_mpt_microbatches_total', { event: 'completed' }), 0);
    h.report(w0, 10);
    h.report(w0, 10); // a duplicate is not counted twice
    assert.equal(await h.value('lora_mpt_microbatches_total', { event: 'completed' }), 1);
  });

  it('counts a lost worker and the micro-batches it held as requeued', async () => {
    const h = harness();
    const w0 = h.connect('w0');
    h.driver.lose(w0.id, 'its stream ended');
    assert.equal(await h.value('lora_mpt_workers_lost_total'), 1);
    assert.equal(await h.value('lora_mpt_microbatches_total', { event: 'requeued' }), 2);
    h.connect('w1');
    assert.equal(await h.value('lora_mpt_microbatches_total', { event: 'assigned' }), 4, 'dealt again');
  });

  it('counts refused results by what followed: the session reset, then the worker dropped', async () => {
    const h = harness();
    for (let n = 1; n <= OFFENCES_BEFORE_DROP; n++) h.report(h.connect('bad'), 10, Number.NaN);
    assert.equal(await h.value('lora_mpt_refused_results_total', { outcome: 'reset' }), 1);
    assert.equal(await h.value('lora_mpt_refused_results_total', { outcome: 'dropped' }), 1);
    assert.ok(h.driver.dropped.has('bad'));
    assert.equal(await h.value('lora_mpt_workers_lost_total'), OFFENCES_BEFORE_DROP, 'each refusal ends it');
  });

  it("counts a member whose reduced-gradient checksum differs from the coordinator's", async () => {
    const h = harness();
    const w0 = h.connect('w0');
    h.report(w0, 10);
    h.report(w0, 11);
    const start = h.sent.find((m) => m.body?.$case === 'reduceStart')!.body;
    assert.equal(start?.$case, 'reduceStart');
    h.rounds[0]!.resolve(Float32Array.of(0.5, -0.5, 0.25, 0));
    await tick();
    const own = finalizeGradient(Float32Array.of(0.5, -0.5, 0.25, 0), 2, 1);
    h.driver.onReduceResult(w0.id, {
      step: 0,
      generation: start.value.generation,
      checksum: `${own.checksum}-not`,
      gradNorm: own.norm,
      stateChecksum: h.replica.checksum(),
      error: '',
      blame: '',
      contributions: [],
    });
    assert.equal(await h.value('lora_mpt_replica_mismatches_total'), 1);
  });
});

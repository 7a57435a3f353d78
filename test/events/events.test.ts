import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createEvents } from '../../src/events/events.ts';
import { type TappedEvent, tapEvents } from '../../src/events/tap.ts';

/** A stream that keeps what is written; `isTTY` as a terminal or a pipe reports it. */
function capture(isTTY: boolean): Writable & { isTTY: boolean; text(): string } {
  let text = '';
  const w = new Writable({
    write(chunk, _enc, done) {
      text += chunk.toString();
      done();
    },
  }) as Writable & { isTTY: boolean; text(): string };
  w.isTTY = isTTY;
  w.text = () => text;
  return w;
}

const tick = () => new Promise((r) => setImmediate(r));

/** The typed fields of a step_committed event (the text sink reads step and total_steps). */
const committed = (step: number, total: number) => ({
  step,
  total_steps: total,
  generation: 1,
  loss: 1,
  learning_rate: 1e-4,
  grad_norm: 1,
  tokens_per_second: 100,
  eta_seconds: null,
  step_seconds: null,
  micro_batches: { w0: 1 },
});

describe('events', () => {
  it('writes one JSON object per event with its name, bound fields and readable message', async () => {
    const out = capture(false);
    const ev = createEvents({ label: 'coordinator', format: 'json', out, bindings: { run_id: 'r1' } });
    ev.child({ worker: 'w0' }).warn('worker_lost', 'worker w0 lost: its stream ended', { step: 3 });
    await tick();
    const lines = out.text().trim().split('\n');
    assert.equal(lines.length, 1);
    const e = JSON.parse(lines[0]!);
    assert.equal(e.event, 'worker_lost');
    assert.equal(e.level, 'warn');
    assert.equal(e.run_id, 'r1');
    assert.equal(e.worker, 'w0');
    assert.equal(e.step, 3);
    assert.equal(e.msg, 'worker w0 lost: its stream ended');
    assert.match(e.time, /^\d{4}-\d\d-\d\dT/);
  });

  it('drops events below the level asked for', async () => {
    const out = capture(false);
    const ev = createEvents({ label: '', format: 'json', out, level: 'info' });
    ev.debug('ledger_audit', 'ledger of step 1: ...');
    ev.info('eval_done', 'step 1: eval loss 1.0', { step: 1, eval_loss: 1, eval_tokens: 8 });
    await tick();
    assert.deepEqual(
      out
        .text()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).event),
      ['eval_done'],
    );
  });

  it('prints readable lines with the label, warnings marked, step lines every N steps and the last', async () => {
    const out = capture(false);
    const ev = createEvents({ label: 'coordinator', format: 'text', out, stepEvery: 2 });
    for (let step = 1; step <= 3; step++) {
      ev.info('step_committed', `step ${step}/3 loss 1.0`, committed(step, 3));
    }
    ev.warn('run_paused', 'paused: 1 of the 2 workers');
    await tick();
    assert.equal(
      out.text(),
      '[coordinator] step 2/3 loss 1.0\n[coordinator] step 3/3 loss 1.0\n[coordinator] warning: paused: 1 of the 2 workers\n',
    );
  });

  it('redraws one live step line on a terminal, above which other events print', async () => {
    const out = capture(true);
    const ev = createEvents({ label: '', format: 'text', out, stepEvery: 10 });
    ev.info('step_committed', 'step 1/3', committed(1, 3));
    ev.info('step_committed', 'step 2/3', committed(2, 3));
    ev.info('checkpoint_saved', 'saved checkpoint-2', { step: 2, path: 'checkpoint-2' });
    ev.info('step_committed', 'step 3/3', committed(3, 3));
    await tick();
    assert.equal(
      out.text(),
      '\r\x1b[2Kstep 1/3\r\x1b[2Kstep 2/3\r\x1b[2Ksaved checkpoint-2\n\r\x1b[2Kstep 3/3\n',
    );
  });

  it('hands every event, with the fields bound by child(), to a tap as well as to its sink', async () => {
    const out = capture(false);
    const tapped: TappedEvent[] = [];
    const ev = tapEvents(createEvents({ label: '', format: 'json', out, level: 'info' }), (e) =>
      tapped.push(e),
    );
    ev.child({ run_id: 'r1' }).child({ worker: 'w0' }).warn('worker_lost', 'w0 lost', { step: 4 });
    ev.debug('ledger_audit', 'below the log level');
    await tick();
    assert.equal(out.text().trim().split('\n').length, 1, 'the sink still filters by level');
    assert.deepEqual(
      tapped.map((e) => [e.level, e.event, e.msg, e.fields]),
      [
        ['warn', 'worker_lost', 'w0 lost', { run_id: 'r1', worker: 'w0', step: 4 }],
        ['debug', 'ledger_audit', 'below the log level', {}],
      ],
    );
  });
});

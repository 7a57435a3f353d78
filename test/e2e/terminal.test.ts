// `lora-mpt finetune` on a real terminal: util-linux `script` runs it with a pseudo-terminal as its
// stdout, so `--log_format auto` picks text and every committed step redraws one live line in place
// (carriage return + erase line), while other events print on lines of their own; the same run with
// its stdout on a pipe prints JSON events, and `--log_format text` on a pipe prints plain step lines
// every --logging_steps with no control characters.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runArgs, type TinyRun, tinyRun } from '../support/tiny-run.ts';

const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const ERASE = '\r\x1b[2K';
const hasScript = spawnSync('script', ['--version']).status === 0;

const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** Runs `lora-mpt finetune args` with stdout on a terminal (via `script`) or on a pipe; its stdout. */
function finetune(args: readonly string[], terminal: boolean): Promise<{ code: number | null; out: string }> {
  const cmd = [process.execPath, BIN, 'finetune', ...args];
  const child = terminal
    ? spawn('script', ['-qfec', cmd.map(quote).join(' '), '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(cmd[0] as string, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString();
  });
  return new Promise((resolve) =>
    child.once('close', (code) => resolve({ code, out: code === 0 ? out : `${out}\n${err}` })),
  );
}

describe(
  'finetune on a terminal',
  hasScript || process.env.CI ? {} : { skip: 'util-linux script is not installed' },
  () => {
    let run: TinyRun;
    const flags = (out: string, extra: Record<string, string | number>) =>
      runArgs(run, out, {
        batch_size: 4,
        micro_batch_size: 2,
        max_steps: 4,
        cutoff_len: 48,
        val_set_size: 0,
        save_steps: 100,
        warmup_steps: 1,
        backend: 'wasm',
        ...extra,
      });
    before(async () => {
      run = await tinyRun([0, 40]);
    });
    after(() => run?.cleanup());

    it('redraws one live step line in place, and prints other events on lines of their own', async () => {
      const { code, out } = await finetune(flags(join(run.dir, 'tty'), {}), true);
      assert.equal(code, 0, out);
      const text = out.replaceAll('\r\n', '\n'); // the terminal's own newline translation
      for (let step = 1; step <= 4; step++) {
        assert.ok(text.includes(`${ERASE}step ${step}/4  loss `), `step ${step} redrawn in place:\n${text}`);
      }
      // No step line ends a line but the last one: the live line is redrawn, not scrolled.
      const scrolled = text
        .split('\n')
        .filter((l) => /step [1-3]\/4 {2}loss /.test(l.split(ERASE).at(-1) ?? ''));
      assert.deepEqual(scrolled, [], 'steps 1-3 never stay on a line of their own');
      assert.match(text, /step 4\/4 {2}loss [^\n]*\n/, 'the last step line is kept, ended by a newline');
      // An event after the live line first erases it, then prints on its own line.
      const after4 = text.slice(text.lastIndexOf('step 4/4'));
      assert.ok(!after4.includes('\r'), 'nothing redraws after the last step');
      assert.match(after4, /\n[^\r\n]*adapter: [^\r\n]*\n/, 'the adapter is reported on a line of its own');
      assert.match(after4, /\ndone: 4 steps[^\r\n]*\n/, 'and the end of the run');
      assert.ok(!/^\{"/m.test(text), 'text, not JSON, on a terminal');
    });

    it('prints JSON events on a pipe, and plain step lines every --logging_steps with --log_format text', async () => {
      const json = await finetune(flags(join(run.dir, 'pipe-json'), {}), false);
      assert.equal(json.code, 0, json.out);
      const events = json.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { event?: string; step?: number });
      assert.deepEqual(
        events.filter((e) => e.event === 'step_committed').map((e) => e.step),
        [1, 2, 3, 4],
      );
      const text = await finetune(
        flags(join(run.dir, 'pipe-text'), { log_format: 'text', logging_steps: 2 }),
        false,
      );
      assert.equal(text.code, 0, text.out);
      assert.ok(!text.out.includes('\r') && !text.out.includes('\x1b'), 'no control characters on a pipe');
      const steps = text.out.split('\n').filter((l) => /^step \d+\/4 {2}loss /.test(l));
      assert.deepEqual(
        steps.map((l) => Number(/^step (\d+)/.exec(l)?.[1])),
        [2, 4],
      );
    });
  },
);

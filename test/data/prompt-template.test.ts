// alpaca-lora's templates and Prompter behaviour (utils/prompter.py, templates/*.json @8bb8579).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatPrompt, getResponse, loadPromptTemplate } from '../../src/data/prompt-template.ts';

const HEAD_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n';
const HEAD_NO_INPUT =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n';

describe('prompt templates', () => {
  it('formats alpaca with and without input, appending the output with no separator', () => {
    const t = loadPromptTemplate('alpaca');
    assert.equal(
      formatPrompt(t, 'Add.', '1, 2', '3'),
      `${HEAD_INPUT}### Instruction:\nAdd.\n\n### Input:\n1, 2\n\n### Response:\n3`,
    );
    assert.equal(formatPrompt(t, 'Hi.', ''), `${HEAD_NO_INPUT}### Instruction:\nHi.\n\n### Response:\n`);
  });

  it('has alpaca_legacy without the newline after "### Response:"', () => {
    const t = loadPromptTemplate('alpaca_legacy');
    assert.equal(
      formatPrompt(t, 'Hi.', '', 'Yo'),
      `${HEAD_NO_INPUT}### Instruction:\nHi.\n\n### Response:Yo`,
    );
  });

  it('has alpaca_short with the sections only', () => {
    const t = loadPromptTemplate('alpaca_short');
    assert.equal(formatPrompt(t, 'A', 'B'), '### Instruction:\nA\n\n### Input:\nB\n\n### Response:\n');
  });

  it('uses alpaca for an empty name, and keeps braces in the data as they are', () => {
    const t = loadPromptTemplate('');
    assert.equal(t.source, 'alpaca');
    assert.match(
      formatPrompt(t, 'Fix {x}', '{input}'),
      /### Instruction:\nFix \{x\}\n\n### Input:\n\{input\}\n/,
    );
  });

  it('reads a JSON file of the same shape, with {{ }} escapes', (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-tpl-'));
    ctx.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'mine.json');
    writeFileSync(
      file,
      JSON.stringify({
        prompt_input: 'Q {{{instruction}}} {input}\nA:',
        prompt_no_input: 'Q {instruction}\nA:',
        response_split: 'A:',
      }),
    );
    const t = loadPromptTemplate(file);
    assert.equal(formatPrompt(t, 'x', 'y', 'z'), 'Q {x} y\nA:z');
    assert.equal(getResponse(t, 'Q x\na: hello '), 'hello');
  });

  it('names the template and the field when a template is broken', (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-tpl-'));
    ctx.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({ prompt_input: '{instruction} {inptu}', prompt_no_input: '', response_split: 'x' }),
    );
    assert.throws(() => loadPromptTemplate(file), /bad\.json prompt_input: unknown field \{inptu\}/);
    writeFileSync(file, JSON.stringify({ prompt_input: '', response_split: 'x' }));
    assert.throws(() => loadPromptTemplate(file), /"prompt_no_input" is missing or not a string/);
    assert.throws(
      () => loadPromptTemplate('alpacca'),
      /not a built-in \(alpaca, alpaca_legacy, alpaca_short\)/,
    );
  });
});

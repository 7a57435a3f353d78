// A conversation on an Alpaca template: the preamble/turn split of prompt_no_input, the text of a
// conversation written out by hand, and the templates that have no turn structure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatConversation, turnStructure } from '../../src/data/conversation.ts';
import { loadPromptTemplate, parseTemplate } from '../../src/data/prompt-template.ts';

const alpaca = loadPromptTemplate('alpaca');

describe('a conversation on an Alpaca template', () => {
  it('splits prompt_no_input into the preamble and the turn', () => {
    assert.deepEqual(turnStructure(alpaca), {
      preamble:
        'Below is an instruction that describes a task. Write a response that appropriately completes the request.',
      turn: '### Instruction:\n{instruction}\n\n### Response:\n',
    });
  });

  it('writes one turn per exchange, each answer followed by a blank line', () => {
    const text = formatConversation(alpaca, { system: null, messages: ['Hi.', 'Hello!', 'Name a colour.'] });
    assert.equal(
      text,
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
        '### Instruction:\nHi.\n\n### Response:\nHello!\n\n' +
        '### Instruction:\nName a colour.\n\n### Response:\n',
    );
  });

  it('puts the system message in place of the preamble', () => {
    const text = formatConversation(alpaca, { system: 'Be brief.', messages: ['Why?'] });
    assert.equal(text, 'Be brief.\n\n### Instruction:\nWhy?\n\n### Response:\n');
  });

  it('finds no turns where no blank line comes before {instruction}', () => {
    assert.equal(turnStructure(loadPromptTemplate('alpaca_short')), null);
    assert.throws(
      () => formatConversation(loadPromptTemplate('alpaca_short'), { system: 'S', messages: ['U'] }),
      /alpaca_short has no turn structure/,
    );
  });

  it('finds no turns where the preamble holds a field; keeps escaped braces', () => {
    const t = (noInput: string) =>
      parseTemplate(
        { prompt_input: '{instruction}{input}', prompt_no_input: noInput, response_split: 'R:' },
        'file.json',
      );
    assert.equal(turnStructure(t('{instruction} first\n\nthen {instruction}')), null);
    assert.deepEqual(turnStructure(t('Pre {{x}}\n\nQ: {instruction}\nR:')), {
      preamble: 'Pre {x}',
      turn: 'Q: {instruction}\nR:',
    });
  });
});

// A multi-turn chat and a system message on POST /v1/chat/completions of a real server: the answer
// and prompt length must be those of /v1/completions given the same conversation written out by hand
// as Alpaca text (greedy decoding, so both are deterministic). And the 400s of a template that has no
// turns (alpaca_short: no blank line before {instruction}).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type GenerateServer, postJson, startGenerateServer } from './support/generate-server.ts';

// biome-ignore lint/suspicious/noExplicitAny: answers are JSON, checked field by field below
type Answer = Record<string, any>;

let alpaca: GenerateServer;
let short: GenerateServer;

before(async () => {
  [alpaca, short] = await Promise.all([
    startGenerateServer(512, 11),
    startGenerateServer(512, 11, { args: ['--prompt_template_name', 'alpaca_short'] }),
  ]);
});

after(async () => {
  await Promise.all([alpaca?.close(), short?.close()]);
});

const greedy = { max_tokens: 12, temperature: 0 };

async function ask(server: GenerateServer, path: string, body: unknown): Promise<Answer> {
  const res = await postJson(server.url, path, body);
  const answer = (await res.json()) as Answer;
  assert.equal(res.status, 200, JSON.stringify(answer));
  return answer;
}

/** The chat's answer and the completion's of `written`: the same text and the same token counts. */
async function assertSameAnswer(messages: unknown[], written: string): Promise<void> {
  const chat = await ask(alpaca, '/v1/chat/completions', { messages, ...greedy });
  const completion = await ask(alpaca, '/v1/completions', { prompt: written, ...greedy });
  assert.equal(chat.usage.prompt_tokens, completion.usage.prompt_tokens);
  assert.equal(chat.usage.completion_tokens, completion.usage.completion_tokens);
  assert.ok(completion.choices[0].text.trim() !== '', 'the model says something');
  // The chat answer is the seed's get_response: the new text, trimmed.
  assert.equal(chat.choices[0].message.content, completion.choices[0].text.trim());
}

describe('a conversation on /v1/chat/completions (real server)', () => {
  it('answers a multi-turn chat as the Alpaca text written out by hand', async () => {
    await assertSameAnswer(
      [
        { role: 'user', content: 'Tell me about alpacas.' },
        { role: 'assistant', content: 'Alpacas are camelids from South America.' },
        { role: 'user', content: 'What do they eat?' },
        { role: 'assistant', content: 'Grass and hay.' },
        { role: 'user', content: 'How tall are they?' },
      ],
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
        '### Instruction:\nTell me about alpacas.\n\n### Response:\nAlpacas are camelids from South America.\n\n' +
        '### Instruction:\nWhat do they eat?\n\n### Response:\nGrass and hay.\n\n' +
        '### Instruction:\nHow tall are they?\n\n### Response:\n',
    );
  });

  it('puts a system message in place of the preamble (the example of docs/generate.md)', async () => {
    await assertSameAnswer(
      [
        { role: 'system', content: 'You are a terse llama expert.' },
        { role: 'user', content: 'Tell me about alpacas.' },
        { role: 'assistant', content: 'Alpacas are camelids from South America.' },
        { role: 'user', content: 'What do they eat?' },
      ],
      'You are a terse llama expert.\n\n' +
        '### Instruction:\nTell me about alpacas.\n\n### Response:\nAlpacas are camelids from South America.\n\n' +
        '### Instruction:\nWhat do they eat?\n\n### Response:\n',
    );
    await assertSameAnswer(
      [
        { role: 'system', content: 'You are a terse llama expert.' },
        { role: 'user', content: 'Name a colour.' },
      ],
      'You are a terse llama expert.\n\n### Instruction:\nName a colour.\n\n### Response:\n',
    );
  });

  it('answers one user message exactly as before: prompt_no_input', async () => {
    await assertSameAnswer(
      [{ role: 'user', content: 'Name a colour.' }],
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
        '### Instruction:\nName a colour.\n\n### Response:\n',
    );
  });

  it('refuses a conversation naming the message at fault', async () => {
    const res = await postJson(alpaca.url, '/v1/chat/completions', {
      messages: [
        { role: 'user', content: 'a' },
        { role: 'user', content: 'b' },
      ],
    });
    assert.equal(res.status, 400);
    const e = (await res.json()) as Answer;
    assert.equal(e.error.param, 'messages[1].role');
    assert.equal(e.error.type, 'invalid_request_error');
  });

  it('refuses a system message or several turns on a template with no turn structure', async () => {
    for (const messages of [
      [
        { role: 'system', content: 'S.' },
        { role: 'user', content: 'U.' },
      ],
      [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 'b' },
        { role: 'user', content: 'c' },
      ],
    ]) {
      const res = await postJson(short.url, '/v1/chat/completions', { messages, ...greedy });
      const e = (await res.json()) as Answer;
      assert.equal(res.status, 400, JSON.stringify(e));
      assert.equal(e.error.param, 'messages');
      assert.match(e.error.message, /alpaca_short has no turn structure/);
    }
    const one = await ask(short, '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'U.' }],
      ...greedy,
    });
    assert.equal(one.object, 'chat.completion');
  });
});

// OpenAI's `stop` on a real `lora-mpt generate` server: which values are taken, and that an answer
// ends just before the first stop string — whole, streamed (no part of the stop string ever sent)
// and in chat. Every expected answer is the same request's answer without `stop`, cut here by plain
// string search, so the server's own cutting is never what it is checked against.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type GenerateServer, postJson, startGenerateServer } from './support/generate-server.ts';
import { readSse } from './support/sse.ts';

let server: GenerateServer;

before(async () => {
  server = await startGenerateServer(512, 5);
});

after(async () => {
  await server.close();
});

// biome-ignore lint/suspicious/noExplicitAny: answers are JSON, checked field by field below
type Answer = Record<string, any>;
type Path = '/v1/completions' | '/v1/chat/completions';

async function ask(path: Path, body: object): Promise<Answer> {
  const res = await postJson(server.url, path, body);
  assert.equal(res.status, 200, `${path} ${JSON.stringify(body)}`);
  return (await res.json()) as Answer;
}

/** The streamed text deltas (without the empty last one) and the finish reason. */
async function streamed(path: Path, body: object): Promise<{ deltas: string[]; finish: string }> {
  const { events, done } = await readSse(await postJson(server.url, path, { ...body, stream: true }));
  assert.ok(done, 'ends with data: [DONE]');
  const choices = (events as Answer[]).map((e) => e.choices[0]);
  const text = (c: Answer) => (path === '/v1/completions' ? c.text : (c.delta.content ?? ''));
  return { deltas: choices.map(text).filter((t) => t !== ''), finish: choices.at(-1)?.finish_reason };
}

/** The answer text before the first occurrence of `stop`, found independently of the server. */
function textBefore(text: string, stop: string): string {
  const i = text.indexOf(stop);
  assert.ok(i > 0, `${JSON.stringify(stop)} is inside ${JSON.stringify(text)} and not at its start`);
  return text.slice(0, i);
}

/** A 4-character stop string that first occurs across the boundary of two streamed deltas in the
 * first half of the answer: to stream it right, the server must hold back the two characters
 * before the boundary. */
function stopAcrossDeltas(deltas: readonly string[]): string {
  const text = deltas.join('');
  let at = 0;
  for (const d of deltas.slice(0, -1)) {
    at += d.length;
    if (at < 3 || at > text.length / 2) continue;
    const stop = text.slice(at - 2, at + 2);
    if (stop.length === 4 && !stop.includes('\uFFFD') && text.indexOf(stop) === at - 2) return stop;
  }
  throw new Error(`no stop string across two deltas in ${JSON.stringify(deltas)}`);
}

/** A 3-character stop string from the middle of `text` (no broken character in it). */
function stopFromMiddle(text: string): string {
  for (let at = Math.floor(text.length / 2); at + 3 <= text.length; at++) {
    const stop = text.slice(at, at + 3);
    if (!stop.includes('\uFFFD') && text.indexOf(stop) > 0) return stop;
  }
  throw new Error(`no stop string in the middle of ${JSON.stringify(text)}`);
}

describe('OpenAI stop strings (server)', () => {
  it('takes a string, an array of up to 4, null or [] as stop', async () => {
    for (const stop of ['.', ['a', 'b', 'c', 'd'], null, []]) {
      await ask('/v1/completions', { prompt: 'The alpaca is', max_tokens: 2, temperature: 0, stop });
    }
  });

  it('answers 400 naming stop or stop[i] for 5 strings, an empty string, a number, a non-string element', async () => {
    const cases: [unknown, string, RegExp][] = [
      [['a', 'b', 'c', 'd', 'e'], 'stop', /at most 4/],
      ['', 'stop', /empty/],
      [['a', ''], 'stop[1]', /non-empty string/],
      [3, 'stop', /a string or an array/],
      [['a', 3], 'stop[1]', /non-empty string/],
    ];
    for (const path of ['/v1/completions', '/v1/chat/completions'] as const) {
      for (const [stop, param, message] of cases) {
        const prompt =
          path === '/v1/completions' ? { prompt: 'a' } : { messages: [{ role: 'user', content: 'a' }] };
        const res = await postJson(server.url, path, { ...prompt, stop });
        const e = (await res.json()) as Answer;
        assert.equal(res.status, 400, `${path} stop ${JSON.stringify(stop)}`);
        assert.equal(e.error.param, param);
        assert.equal(e.error.type, 'invalid_request_error');
        assert.match(e.error.message, message);
      }
    }
  });

  const completion = { prompt: 'The alpaca is', max_tokens: 40, temperature: 0 };

  it('ends a greedy completion just before the stop string, with fewer tokens and finish_reason stop', async () => {
    const free = await ask('/v1/completions', completion);
    const stop = stopAcrossDeltas((await streamed('/v1/completions', completion)).deltas);
    const cut = await ask('/v1/completions', { ...completion, stop: ['never there', stop] });
    assert.equal(cut.choices[0].text, textBefore(free.choices[0].text, stop));
    assert.equal(cut.choices[0].finish_reason, 'stop');
    assert.equal(free.choices[0].finish_reason, 'length');
    assert.ok(
      cut.usage.completion_tokens < free.usage.completion_tokens,
      `${cut.usage.completion_tokens} tokens with stop, ${free.usage.completion_tokens} without`,
    );
  });

  it('streams the cut answer without ever sending the start of the stop string', async () => {
    const free = await ask('/v1/completions', completion);
    const stop = stopAcrossDeltas((await streamed('/v1/completions', completion)).deltas);
    const expected = textBefore(free.choices[0].text, stop);
    const { deltas, finish } = await streamed('/v1/completions', { ...completion, stop });
    let sent = '';
    for (const d of deltas) {
      assert.ok(!d.includes(stop), `delta ${JSON.stringify(d)} holds ${JSON.stringify(stop)}`);
      sent += d;
      assert.ok(expected.startsWith(sent), `${JSON.stringify(sent)} goes past ${JSON.stringify(expected)}`);
    }
    assert.equal(sent, expected);
    assert.equal(finish, 'stop');
  });

  it('ends a chat answer before the stop string, whole and streamed', async () => {
    const chat = {
      messages: [{ role: 'user', content: 'Tell me about alpacas.' }],
      max_tokens: 30,
      temperature: 0,
    };
    const free = await ask('/v1/chat/completions', chat);
    const stop = stopFromMiddle(free.choices[0].message.content);
    const expected = textBefore(free.choices[0].message.content, stop);
    const cut = await ask('/v1/chat/completions', { ...chat, stop });
    assert.equal(cut.choices[0].message.content, expected);
    assert.equal(cut.choices[0].finish_reason, 'stop');
    assert.ok(cut.usage.completion_tokens < free.usage.completion_tokens);
    const { deltas, finish } = await streamed('/v1/chat/completions', { ...chat, stop });
    assert.equal(deltas.join(''), expected);
    assert.equal(finish, 'stop');
  });

  it('cuts a beam search answer at the end: the search still runs to its own end', async () => {
    const beams = { ...completion, max_tokens: 12, num_beams: 2 };
    const free = await ask('/v1/completions', beams);
    const stop = stopFromMiddle(free.choices[0].text);
    const cut = await ask('/v1/completions', { ...beams, stop });
    assert.equal(cut.choices[0].text, textBefore(free.choices[0].text, stop));
    assert.equal(cut.choices[0].finish_reason, 'stop');
    assert.equal(cut.usage.completion_tokens, free.usage.completion_tokens);
  });
});

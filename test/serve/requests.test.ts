// Request validation of the generate server: every bad field is named, OpenAI's and generate.py's
// defaults and meanings are kept (temperature 0 = greedy; the page never samples unless asked).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRequestError } from '../../src/serve/request-fields.ts';
import { parseChatRequest, parseCompletionRequest, parsePageRequest } from '../../src/serve/requests.ts';

function refused(fn: () => unknown, param: string | null, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadRequestError, String(e));
    assert.equal(e.param, param);
    assert.match(e.message, message);
    return true;
  });
}

describe('OpenAI completion requests', () => {
  it('reads OpenAI defaults: sampling at temperature 1, 16 tokens', () => {
    const r = parseCompletionRequest({ model: 'x', prompt: 'Hello' }, 2048);
    assert.deepEqual(r.prompt, { kind: 'raw', text: 'Hello' });
    assert.equal(r.decoding.doSample, true);
    assert.equal(r.decoding.temperature, 1);
    assert.equal(r.decoding.maxNewTokens, 16);
    assert.equal(r.stream, false);
  });

  it('decodes greedily at temperature 0 and with beams', () => {
    assert.equal(parseCompletionRequest({ prompt: 'a', temperature: 0 }, 64).decoding.doSample, false);
    const beams = parseCompletionRequest({ prompt: 'a', temperature: 0, num_beams: 4 }, 64).decoding;
    assert.equal(beams.numBeams, 4);
    assert.equal(beams.doSample, false);
  });

  it('names the field of every bad value', () => {
    refused(() => parseCompletionRequest([], 64), null, /JSON object/);
    refused(() => parseCompletionRequest({}, 64), 'prompt', /non-empty string/);
    refused(() => parseCompletionRequest({ prompt: ['a', 'b'] }, 64), 'prompt', /one prompt/);
    refused(
      () => parseCompletionRequest({ prompt: 'a', temperature: 3 }, 64),
      'temperature',
      /\[0, 2\], got 3/,
    );
    refused(() => parseCompletionRequest({ prompt: 'a', temperature: '1' }, 64), 'temperature', /got "1"/);
    refused(() => parseCompletionRequest({ prompt: 'a', top_p: 0 }, 64), 'top_p', /\(0, 1\]/);
    refused(() => parseCompletionRequest({ prompt: 'a', max_tokens: 65 }, 64), 'max_tokens', /\[1, 64\]/);
    refused(() => parseCompletionRequest({ prompt: 'a', max_tokens: 1.5 }, 64), 'max_tokens', /whole number/);
    refused(() => parseCompletionRequest({ prompt: 'a', num_beams: 2 }, 64), 'num_beams', /temperature to 0/);
    refused(() => parseCompletionRequest({ prompt: 'a', n: 2 }, 64), 'n', /one choice/);
    refused(() => parseCompletionRequest({ prompt: 'a', stream: 'yes' }, 64), 'stream', /true or false/);
    refused(() => parseCompletionRequest({ prompt: 'a', tempreature: 1 }, 64), 'tempreature', /unrecognized/);
    refused(
      () => parseCompletionRequest({ prompt: 'a', stream_options: { include_usage: true } }, 64),
      'stream_options',
      /stream: true/,
    );
  });

  it('reads stop as one string or up to 4, null and [] meaning none', () => {
    const stop = (v: unknown) => parseCompletionRequest({ prompt: 'a', stop: v }, 64).decoding.stopStrings;
    assert.deepEqual(stop('\n'), ['\n']);
    assert.deepEqual(stop(['a', 'bc', 'd', 'e']), ['a', 'bc', 'd', 'e']);
    assert.deepEqual(stop(null), []);
    assert.deepEqual(stop([]), []);
    refused(() => stop(['a', 'b', 'c', 'd', 'e']), 'stop', /at most 4 strings, got 5/);
    refused(() => stop(''), 'stop', /not be empty/);
    refused(() => stop(7), 'stop', /a string or an array/);
    refused(() => stop(['a', '']), 'stop[1]', /non-empty string, got ""/);
    refused(() => stop(['a', 3]), 'stop[1]', /non-empty string, got 3/);
  });

  it('accepts the neutral values OpenAI clients send by default', () => {
    const r = parseCompletionRequest(
      {
        prompt: 'a',
        n: 1,
        stop: null,
        presence_penalty: 0,
        frequency_penalty: 0,
        logprobs: null,
        user: 'u1',
      },
      64,
    );
    assert.equal(r.user, 'u1');
  });
});

describe('OpenAI chat requests', () => {
  it('makes the one user message the Alpaca instruction, "input" its Input', () => {
    const r = parseChatRequest(
      { messages: [{ role: 'user', content: 'Translate.' }], input: 'Bonjour', temperature: 0 },
      2048,
    );
    assert.deepEqual(r.prompt, { kind: 'instruction', instruction: 'Translate.', input: 'Bonjour' });
    assert.equal(r.decoding.maxNewTokens, 128);
  });

  it('makes a conversation of several messages or a system message, in order', () => {
    const r = parseChatRequest(
      {
        messages: [
          { role: 'system', content: 'Answer briefly.' },
          { role: 'user', content: 'Hi.', name: 'ann' },
          { role: 'assistant', content: 'Hello.' },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Who' },
              { type: 'text', text: 'are you?' },
            ],
          },
        ],
      },
      64,
    );
    assert.deepEqual(r.prompt, {
      kind: 'conversation',
      system: 'Answer briefly.',
      messages: ['Hi.', 'Hello.', 'Who\nare you?'],
    });
    const s = parseChatRequest(
      {
        messages: [
          { role: 'system', content: 'S.' },
          { role: 'user', content: 'U.' },
        ],
      },
      64,
    );
    assert.deepEqual(s.prompt, { kind: 'conversation', system: 'S.', messages: ['U.'] });
  });

  it('names what is wrong with the messages', () => {
    const chat =
      (...messages: unknown[]) =>
      () =>
        parseChatRequest({ messages }, 64);
    const u = { role: 'user', content: 'a' };
    const a = { role: 'assistant', content: 'b' };
    const sys = { role: 'system', content: 's' };
    refused(() => parseChatRequest({ messages: [] }, 64), 'messages', /non-empty array/);
    refused(chat(u, u), 'messages[1].role', /"user": expected "assistant" after a "user" message/);
    refused(chat(u, a, a, u), 'messages[2].role', /expected "user" after an "assistant"/);
    refused(chat(a, u), 'messages[0].role', /expected "system" or "user" first/);
    refused(chat(sys, a, u), 'messages[1].role', /expected "user" after a "system"/);
    refused(chat(u, a, sys, u), 'messages[2].role', /"system" message may only come first/);
    refused(
      chat(u, a, { role: 'tool', content: 'x' }),
      'messages[2].role',
      /"system", "user" or "assistant", got "tool"/,
    );
    refused(chat(u, { content: 'x' }), 'messages[1].role', /got null/);
    refused(chat(u, a), 'messages[1].role', /must end with a "user" message/);
    refused(chat({ role: 'system', content: 'a' }), 'messages[0].role', /"user"/);
    refused(chat({ role: 'user', content: ' ' }), 'messages[0].content', /non-empty/);
    refused(
      chat(u, { role: 'assistant', content: '' }, u),
      'messages[1].content',
      /non-empty string, got ""/,
    );
    refused(chat(u, { role: 'assistant', content: 7 }, u), 'messages[1].content', /non-empty string .*got 7/);
    refused(chat(sys, { role: 'user' }), 'messages[1].content', /got null/);
    refused(
      chat(u, a, { role: 'user', content: [{ type: 'image_url', image_url: {} }] }),
      'messages[2].content[0].type',
      /only "text" parts/,
    );
    refused(chat(u, 'hi'), 'messages[1]', /must be an object/);
    refused(chat({ role: 'user', content: 'a', extra: 1 }), 'extra', /unrecognized/);
  });

  it('takes "input" with a single user message only', () => {
    const u = { role: 'user', content: 'a' };
    refused(
      () => parseChatRequest({ messages: [u, { role: 'assistant', content: 'b' }, u], input: 'x' }, 64),
      'input',
      /one user message/,
    );
    refused(
      () => parseChatRequest({ messages: [{ role: 'system', content: 's' }, u], input: 'x' }, 64),
      'input',
      /no system message/,
    );
  });
});

describe("the page's requests (generate.py's fields)", () => {
  it("has generate.py's defaults: 4 beams, 128 tokens, no sampling", () => {
    const r = parsePageRequest({ instruction: 'Tell me about alpacas.' }, 2048);
    assert.equal(r.decoding.numBeams, 4);
    assert.equal(r.decoding.maxNewTokens, 128);
    assert.equal(r.decoding.doSample, false);
    assert.equal(r.decoding.topK, 40);
    assert.equal(r.decoding.topP, 0.75);
  });

  it('samples only when asked, with one beam', () => {
    const r = parsePageRequest({ instruction: 'a', sample: true, num_beams: 1, temperature: 0.7 }, 64);
    assert.equal(r.decoding.doSample, true);
    assert.equal(r.decoding.temperature, 0.7);
    refused(() => parsePageRequest({ instruction: 'a', sample: true }, 64), 'num_beams', /Beams to 1/);
    refused(() => parsePageRequest({ instruction: ' ' }, 64), 'instruction', /empty/);
    refused(() => parsePageRequest({ instruction: 'a', top_k: -1 }, 64), 'top_k', /\[0, 1000\]/);
  });
});

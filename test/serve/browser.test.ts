// The web page of `lora-mpt generate` in real headless Chromium (Debian's `chromium`, driven by
// playwright-core): type an instruction, submit, watch the answer stream in, read the final answer
// (the same as the API gives for the same settings); then the same at phone width, where every
// control must fit the screen; a server with an API key, whose page asks for it; and a Llama 3
// folder with a Llama 3 tokenizer, whose page answers what transformers' generate and generate.py's
// Prompter give (test/fixtures/generate/llama3-page, tools/reference/make_llama_page_fixture.py).
// Screenshots are kept in test-artifacts/ (git-ignored).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { hasChromium, launchChromium } from '../support/chromium.ts';
import { type LoraProcess, startLoraMpt } from '../support/processes.ts';
import { type GenerateServer, startGenerateServer } from './support/generate-server.ts';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const LLAMA = fileURLToPath(new URL('../fixtures/generate/llama3-page/', import.meta.url));
const LLAMA_TOKENIZER = fileURLToPath(
  new URL('../data/fixtures/llama-tok/llama3/tokenizer.json', import.meta.url),
);

// Without chromium (scripts/setup.sh installs it) the test skips and says so, except in CI.
const needsChromium =
  hasChromium || process.env.CI ? {} : { skip: 'chromium not installed: run bash scripts/setup.sh' };

let generate: GenerateServer | undefined;
let keyed: GenerateServer | undefined;
let llama: LoraProcess | undefined;
let llamaUrl: string;
const KEY = 'page-test-key-7-4e8a1c9b3f6d2e0a5c7b';
let url: string;
let browser: Browser;

before(async () => {
  if (!hasChromium && !process.env.CI) return;
  llama = startLoraMpt('generate (llama)', [
    'generate',
    '--base_model',
    LLAMA,
    '--tokenizer',
    LLAMA_TOKENIZER,
    '--port',
    '0',
    '--backend',
    'wasm',
  ]);
  let llamaListening: Record<string, unknown>;
  [generate, keyed, llamaListening] = await Promise.all([
    startGenerateServer(512, 3),
    startGenerateServer(256, 3, { env: { LORA_MPT_API_KEY: KEY } }),
    llama.waitForEvent('server_listening', undefined, { ms: 120_000 }),
  ]);
  llamaUrl = llamaListening.url as string;
  url = generate.url;
  browser = await launchChromium();
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await Promise.all([generate?.close(), keyed?.close(), llama?.kill('SIGTERM')]);
});

/** Fills the form, submits, and returns every distinct text the Output box showed, in order. */
async function ask(
  page: Page,
  instruction: string,
  o: { beams: number; maxTokens: number },
): Promise<string[]> {
  await page.fill('#instruction', instruction);
  await page.fill('#num_beams', String(o.beams));
  await page.fill('#max_new_tokens', String(o.maxTokens));
  await page.check('#stream');
  // Record each value the output takes, from inside the page, as it changes (page code as text: the
  // tests compile without the DOM's types).
  await page.evaluate(`(() => {
    const out = document.getElementById('output');
    const seen = (window.seen = []);
    new MutationObserver(() => { if (seen.at(-1) !== out.value) seen.push(out.value); })
      .observe(out, { attributes: true, attributeFilter: ['data-updates'] });
  })()`);
  await page.click('#submit');
  await page.waitForFunction("/tokens in/.test(document.getElementById('status').textContent)", null, {
    timeout: 120_000,
  });
  return (await page.evaluate('window.seen')) as string[];
}

describe('the generate page in headless Chromium', needsChromium, () => {
  it('streams the answer into the Output box as it is generated', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(url);
    assert.equal(await page.inputValue('#temperature'), '0.1');
    assert.equal(await page.inputValue('#num_beams'), '4');
    const seen = await ask(page, 'Tell me about alpacas.', { beams: 1, maxTokens: 40 });
    const final = await page.inputValue('#output');
    assert.ok(seen.length >= 5, `the output changed ${seen.length} times`);
    assert.equal(seen.at(-1), final);
    // Streamed text grows: each shown answer (greedy) starts with the one before, trimmed.
    for (let i = 1; i < seen.length; i++) {
      assert.ok((seen[i] as string).startsWith((seen[i - 1] as string).trimEnd()), `step ${i}`);
    }
    const api = (await (
      await fetch(new URL('/api/generate', url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ instruction: 'Tell me about alpacas.', num_beams: 1, max_new_tokens: 40 }),
      })
    ).json()) as { text: string };
    assert.equal(final, api.text);
    assert.match((await page.textContent('#status')) ?? '', /\d+ tokens in [\d.]+ s/);
    await page.screenshot({ path: `${ARTIFACTS}generate-page.png`, fullPage: true });
    await page.close();
  });

  it('is usable at phone width: every control fits and a request goes through', async () => {
    const width = 390;
    const page = await browser.newPage({ viewport: { width, height: 844 }, isMobile: true, hasTouch: true });
    await page.goto(url);
    const overflow = (await page.evaluate('document.documentElement.scrollWidth')) as number;
    assert.ok(overflow <= width, `the page is ${overflow}px wide on a ${width}px screen`);
    for (const id of [
      'instruction',
      'input',
      'temperature',
      'top_p',
      'top_k',
      'num_beams',
      'max_new_tokens',
      'stream',
      'submit',
      'output',
    ]) {
      const box = await page.locator(`#${id}`).boundingBox();
      assert.ok(box !== null, `#${id} is not shown`);
      assert.ok(box.x >= 0 && box.x + box.width <= width, `#${id} spans ${box.x}..${box.x + box.width}`);
    }
    const submit = await page.locator('#submit').boundingBox();
    assert.ok(submit !== null && submit.height >= 40, 'the Submit button is big enough to tap');
    const seen = await ask(page, 'Name three colours.', { beams: 2, maxTokens: 12 });
    assert.ok(seen.length >= 2, `the output changed ${seen.length} times`);
    await page.screenshot({ path: `${ARTIFACTS}generate-page-phone.png`, fullPage: true });
    await page.close();
  });

  it('shows the server’s refusal when the instruction does not fit', async () => {
    const page = await browser.newPage();
    await page.goto(url);
    await page.fill('#instruction', 'word '.repeat(600));
    await page.click('#submit');
    await page.waitForSelector('#status.error');
    assert.match((await page.textContent('#status')) ?? '', /max_seq_len\) is 512/);
    await page.close();
  });

  it('asks for the API key of a server that has one, says when it is wrong, and keeps it for the tab', async () => {
    const page = await browser.newPage();
    await page.goto((keyed as GenerateServer).url);
    assert.ok(await page.isVisible('#api_key'), 'the page shows an API key field');
    assert.equal(await page.getAttribute('#api_key', 'type'), 'password');
    await page.fill('#api_key', 'not-the-key');
    await page.fill('#instruction', 'Name a colour.');
    await page.click('#submit');
    await page.waitForSelector('#status.error');
    assert.match((await page.textContent('#status')) ?? '', /refused the API key/);
    await page.fill('#api_key', KEY);
    const seen = await ask(page, 'Name a colour.', { beams: 1, maxTokens: 6 });
    assert.ok(seen.length >= 1, 'the answer arrived');
    await page.reload();
    assert.equal(await page.inputValue('#api_key'), KEY, 'kept in sessionStorage');
    await page.close();
    const plain = await browser.newPage();
    await plain.goto(url);
    assert.equal(await plain.locator('#api_key').count(), 0, 'no key, no field');
    await plain.close();
  });

  it("answers on a Llama 3 folder what transformers' generate and generate.py's Prompter give", async () => {
    const fx = JSON.parse(readFileSync(`${LLAMA}page.json`, 'utf8')) as {
      instruction: string;
      max_new_tokens: number;
      runs: { num_beams: number; new_tokens: number[]; answer: string }[];
    };
    const page = await browser.newPage();
    await page.goto(llamaUrl);
    for (const run of fx.runs) {
      await ask(page, fx.instruction, { beams: run.num_beams, maxTokens: fx.max_new_tokens });
      assert.equal(await page.inputValue('#output'), run.answer, `${run.num_beams} beam(s)`);
      // Every token was made (no EOS in the reference), as the status line counts them.
      assert.match(
        (await page.textContent('#status')) ?? '',
        new RegExp(`^${run.new_tokens.length} tokens in`),
      );
    }
    await page.close();
  });
});

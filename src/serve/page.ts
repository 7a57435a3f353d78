// The web page `lora-mpt generate` serves at /: generate.py's Gradio form, same fields, ranges and
// defaults (Instruction, Input, Temperature 0.1, Top p 0.75, Top k 40, Beams 4, Max tokens 128,
// Stream output), plus a "Sample" box generate.py lacks (it never samples). One self-contained HTML
// file, no external assets; it posts to /api/generate and, when streaming, shows each step's answer.
// When the server has an API key the page asks for it (an "API key" field, kept in sessionStorage)
// and sends it as `Authorization: Bearer`; the page itself holds no secret.
import { PAGE_DEFAULTS } from './requests.ts';

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );

const STYLE = `
*{box-sizing:border-box}
body{margin:0;font:16px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;background:#f6f7f9;color:#1f2328}
main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:0 0 4px}
.model{color:#57606a;font-size:.9rem;margin:0 0 16px;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
@media (max-width:720px){.grid{grid-template-columns:1fr}}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px}
label{display:block;font-weight:600;margin:8px 0 4px}
textarea,input[type=password]{width:100%;font:inherit;padding:8px;border:1px solid #d0d7de;border-radius:6px;resize:vertical}
.slider{display:grid;grid-template-columns:1fr 5.5em;gap:8px;align-items:center}
.slider input[type=range]{width:100%;min-height:32px}
.slider output{text-align:right;font-variant-numeric:tabular-nums}
.check{display:flex;gap:8px;align-items:center;margin:10px 0;font-weight:600}
.check input{width:22px;height:22px;flex:none}
.hint{font-weight:400;color:#57606a;font-size:.85rem}
button{width:100%;margin-top:12px;padding:12px;font:inherit;font-weight:600;color:#fff;background:#1f6feb;border:0;border-radius:6px;min-height:44px}
button:disabled{background:#8c959f}
#status{min-height:1.4em;color:#57606a;font-size:.9rem;margin-top:8px}
#status.error{color:#cf222e}
`;

function slider(id: string, label: string, min: number, max: number, step: number, value: number): string {
  return `<label for="${id}">${label}</label>
<div class="slider"><input type="range" id="${id}" name="${id}" min="${min}" max="${max}" step="${step}" value="${value}"><output for="${id}" id="${id}_value">${value}</output></div>`;
}

const SCRIPT = `
const form = document.getElementById('form');
const keyBox = document.getElementById('api_key');
const KEY_SLOT = 'lora-mpt-api-key';
if (keyBox) keyBox.value = sessionStorage.getItem(KEY_SLOT) || '';
const output = document.getElementById('output');
const status = document.getElementById('status');
const button = document.getElementById('submit');
for (const r of form.querySelectorAll('input[type=range]')) {
  r.addEventListener('input', () => { document.getElementById(r.id + '_value').textContent = r.value; });
}
function say(text, error) { status.textContent = text; status.className = error ? 'error' : ''; }
function summary(d) {
  const limited = d.limited_by_context ? ', stopped at the model context' : '';
  return d.completion_tokens + ' tokens in ' + d.seconds.toFixed(2) + ' s (' + d.finish_reason + limited + ')';
}
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const v = (id) => document.getElementById(id);
  const body = {
    instruction: v('instruction').value, input: v('input').value,
    temperature: Number(v('temperature').value), top_p: Number(v('top_p').value),
    top_k: Number(v('top_k').value), num_beams: Number(v('num_beams').value),
    max_new_tokens: Number(v('max_new_tokens').value), stream: v('stream').checked, sample: v('sample').checked,
  };
  const headers = { 'content-type': 'application/json' };
  if (keyBox) {
    sessionStorage.setItem(KEY_SLOT, keyBox.value.trim());
    headers.authorization = 'Bearer ' + keyBox.value.trim();
  }
  button.disabled = true; output.value = ''; say('Generating…');
  try {
    const res = await fetch('api/generate', { method: 'POST', headers, body: JSON.stringify(body) });
    if (res.status === 401) {
      if (keyBox) keyBox.focus();
      throw new Error('The server refused the API key: enter the key it was started with in the API key field.');
    }
    if (!res.ok) { const e = await res.json(); throw new Error(e.error.message); }
    if (!body.stream) { const d = await res.json(); output.value = d.text; say(summary(d)); return; }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\\n\\n')) >= 0) {
        const line = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        if (!line.startsWith('data: ')) continue;
        const d = JSON.parse(line.slice(6));
        if (d.error) throw new Error(d.error.message);
        output.value = d.text;
        output.dataset.updates = String(Number(output.dataset.updates || 0) + 1);
        if (d.done) say(summary(d));
      }
    }
  } catch (err) {
    say(err.message, true);
  } finally {
    button.disabled = false;
  }
});
`;

/** The password box of a server with an API key (the browser may offer to remember it). */
const KEY_FIELD = `<label for="api_key">API key</label>
<input type="password" id="api_key" name="api_key" autocomplete="current-password" placeholder="this server requires a key" required>`;

export function pageHtml(o: {
  readonly modelName: string;
  readonly context: number;
  /** The server requires an API key: ask for it. */
  readonly needsKey: boolean;
}): string {
  const d = PAGE_DEFAULTS;
  const maxTokens = Math.min(2000, o.context);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>🦙🌲 Alpaca-LoRA · lora-mpt</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>🦙🌲 Alpaca-LoRA</h1>
<p class="model">${escapeHtml(o.modelName)} · context ${o.context} tokens</p>
<div class="grid">
<form id="form" class="card">
${o.needsKey ? KEY_FIELD : ''}
<label for="instruction">Instruction</label>
<textarea id="instruction" name="instruction" rows="2" placeholder="Tell me about alpacas." required></textarea>
<label for="input">Input</label>
<textarea id="input" name="input" rows="2" placeholder="none"></textarea>
${slider('temperature', 'Temperature', 0, 1, 0.01, d.temperature)}
${slider('top_p', 'Top p', 0, 1, 0.01, d.top_p)}
${slider('top_k', 'Top k', 0, 100, 1, d.top_k)}
${slider('num_beams', 'Beams', 1, 4, 1, d.num_beams)}
${slider('max_new_tokens', 'Max tokens', 1, maxTokens, 1, Math.min(d.max_new_tokens, maxTokens))}
<label class="check"><input type="checkbox" id="stream" name="stream"${d.stream ? ' checked' : ''}> Stream output</label>
<label class="check"><input type="checkbox" id="sample" name="sample"> Sample <span class="hint">(generate.py never samples; Temperature, Top p and Top k act only with this, and Beams 1)</span></label>
<button id="submit" type="submit">Submit</button>
</form>
<section class="card">
<label for="output">Output</label>
<textarea id="output" rows="5" readonly></textarea>
<div id="status" role="status" aria-live="polite"></div>
</section>
</div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

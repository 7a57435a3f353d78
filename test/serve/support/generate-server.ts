// A real `lora-mpt generate` server on loopback for HTTP tests: a tiny random MPT with the real
// GPT-NeoX tokenizer, the wasm backend, an OS-chosen port; and the JSON POST an OpenAI client makes.
import { type LoraProcess, startLoraMpt } from '../../support/processes.ts';
import { type TinyRun, tinyRun } from '../../support/tiny-run.ts';

export interface GenerateServer {
  readonly url: string;
  /** The --base_model directory (what /v1/models names). */
  readonly model: string;
  readonly process: LoraProcess;
  /** Stops the server and removes the model. */
  close(): Promise<void>;
}

/** Starts the server on a model with `maxSeqLen` positions and random weights from `seed`; `extra`
 * adds flags and environment variables. */
export async function startGenerateServer(
  maxSeqLen: number,
  seed: number,
  extra: { readonly args?: readonly string[]; readonly env?: NodeJS.ProcessEnv } = {},
): Promise<GenerateServer> {
  const run: TinyRun = await tinyRun([0, 1], {
    dModel: 32,
    nHeads: 4,
    nLayers: 2,
    vocabSize: 50432,
    maxSeqLen,
    seed,
  });
  const process = startLoraMpt(
    'generate',
    ['generate', '--base_model', run.model, '--port', '0', '--backend', 'wasm', ...(extra.args ?? [])],
    extra.env,
  );
  const listening = await process.waitForEvent('server_listening', undefined, { ms: 120_000 });
  return {
    url: listening.url as string,
    model: run.model,
    process,
    async close() {
      await process.kill('SIGTERM');
      run.cleanup();
    },
  };
}

export function postJson(url: string, path: string, body: unknown): Promise<Response> {
  return fetch(new URL(path, url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

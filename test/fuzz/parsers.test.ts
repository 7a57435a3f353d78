import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadDataset } from '../../src/data/dataset.ts';
import { Rng } from '../../src/data/rng.ts';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { SafetensorsReader, writeSafetensors } from '../../src/formats/safetensors.ts';
import { TorchBinReader } from '../../src/formats/torch-bin.ts';
import { CoordinatorMessage, WorkerMessage } from '../../src/proto/lora_mpt/v1/coordinator.ts';
import { PROTOCOL_VERSION, refusalOf } from '../../src/protocol/handshake.ts';
import { SHARED_ALPACA, SHARED_TOKENIZER } from '../support/tiny-run.ts';

// Seeded mutation fuzzing of every parser that reads bytes from outside (docs/security.md): the
// .bin reader, safetensors, tokenizer.json, datasets and the gRPC messages. Fixed seeds and counts,
// a few seconds in all. Each mutated input either parses or fails with an Error whose message
// names the file it came from; nothing else (no crash of another kind, no hang, no silent garbage).

/** Uniform [0, 1) draws from the project's seeded generator: the same on every run. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.nextU32() / 2 ** 32;
}

/** One of: flip bits, overwrite a run with random bytes, truncate, insert bytes, or zero a run. */
function mutate(bytes: Uint8Array, random: () => number): Uint8Array {
  const out = Buffer.from(bytes);
  const at = Math.floor(random() * out.length);
  const len = 1 + Math.floor(random() * 16);
  switch (Math.floor(random() * 5)) {
    case 0:
      for (let i = 0; i < len; i++) out[(at + i) % out.length]! ^= 1 << Math.floor(random() * 8);
      return out;
    case 1:
      for (let i = 0; i < len; i++) out[(at + i) % out.length] = Math.floor(random() * 256);
      return out;
    case 2:
      return out.subarray(0, at);
    case 3:
      return Buffer.concat([
        out.subarray(0, at),
        Buffer.from(Array.from({ length: len }, () => Math.floor(random() * 256))),
        out.subarray(at),
      ]);
    default:
      out.fill(0, at, Math.min(out.length, at + len));
      return out;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `parse` on `count` mutations of `seed`; every failure must be an Error naming `path`. */
async function fuzzFile(
  name: string,
  original: Uint8Array,
  count: number,
  seed: number,
  parse: (path: string) => Promise<unknown>,
): Promise<{ parsed: number; refused: number }> {
  const random = rng(seed);
  const path = join(dir, name);
  let parsed = 0;
  let refused = 0;
  for (let i = 0; i < count; i++) {
    writeFileSync(path, mutate(original, random));
    try {
      await parse(path);
      parsed++;
    } catch (err) {
      refused++;
      assert.ok(err instanceof Error, `${name} mutation ${i}: threw ${String(err)}, not an Error`);
      assert.ok(err.message.includes(path), `${name} mutation ${i}: "${err.message}" does not name the file`);
    }
  }
  return { parsed, refused };
}

const fixture = (p: string) => readFileSync(fileURLToPath(new URL(`../fixtures/${p}`, import.meta.url)));

describe('parsers under mutated input (seeded)', () => {
  it('the PyTorch .bin reader names the file in every error', async (t) => {
    for (const [i, f] of ['torch-save/fp16-shared.bin', 'torch-save/state-dict-metadata.bin'].entries()) {
      const r = await fuzzFile('model.bin', fixture(f), 150, 100 + i, async (p) => {
        const reader = await TorchBinReader.open(p);
        try {
          for await (const _ of reader.tensors());
        } finally {
          await reader.close();
        }
      });
      t.diagnostic(`${f}: ${r.parsed} parsed, ${r.refused} refused`);
      assert.ok(r.refused > 0);
    }
  });

  it('the safetensors reader names the file in every error', async (t) => {
    const good = join(dir, 'good.safetensors');
    await writeSafetensors(good, [
      { name: 'a', shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 7) },
      { name: 'b.weight', shape: [5], data: new Float32Array(5).fill(-1.5) },
    ]);
    const r = await fuzzFile('x.safetensors', readFileSync(good), 300, 200, async (p) => {
      const reader = await SafetensorsReader.open(p);
      try {
        for await (const _ of reader.tensors());
      } finally {
        await reader.close();
      }
    });
    t.diagnostic(`${r.parsed} parsed, ${r.refused} refused`);
    assert.ok(r.refused > 0);
  });

  it('tokenizer.json: byte and structure mutations fail naming the file, or give a tokenizer that works', async (t) => {
    // The real GPT-NeoX tokenizer, cut to its first 400 merges (their tokens kept) to stay fast.
    const full = JSON.parse(readFileSync(SHARED_TOKENIZER, 'utf8')) as {
      model: { vocab: Record<string, number>; merges: string[] };
    };
    const merges = full.model.merges.slice(0, 400);
    const keep = new Set(merges.flatMap((m) => [...m.split(' '), m.replace(' ', '')]));
    const vocab = Object.fromEntries(
      Object.entries(full.model.vocab).filter(([k, v]) => v < 256 || keep.has(k)),
    );
    const small = { ...full, model: { ...full.model, vocab, merges } };
    const text = JSON.stringify(small);
    const random = rng(300);
    const where = join(dir, 'tokenizer.json');
    let worked = 0;
    for (let i = 0; i < 120; i++) {
      let bytes: Uint8Array;
      if (i % 2 === 0) {
        bytes = mutate(Buffer.from(text), random);
      } else {
        // A structural change: a field of the wrong type, or one removed.
        const o = JSON.parse(text) as Record<string, Record<string, unknown>>;
        const section = ['model', 'pre_tokenizer', 'decoder', 'normalizer', 'post_processor'][i % 5]!;
        const keys = Object.keys(o[section] ?? {});
        const k = keys[Math.floor(random() * keys.length)];
        if (o[section] && k !== undefined) o[section][k] = [null, 7, 'x', [], {}][Math.floor(random() * 5)];
        bytes = Buffer.from(JSON.stringify(o));
      }
      writeFileSync(where, bytes);
      try {
        const tok = Tokenizer.fromFile(where);
        tok.decode(tok.encode('Below is an instruction that describes a task.\n\n### Response: héllo 123'));
        worked++;
      } catch (err) {
        assert.ok(err instanceof Error, String(err));
        assert.ok(err.message.includes(where), `mutation ${i}: "${err.message}" does not name the file`);
      }
    }
    t.diagnostic(`${worked} of 120 mutated tokenizers still loaded and encoded`);
  });

  it('datasets (JSON and JSON lines) name the file in every error', async (t) => {
    const rows = (JSON.parse(readFileSync(SHARED_ALPACA, 'utf8')) as unknown[]).slice(0, 8);
    for (const [ext, content, seed] of [
      ['json', JSON.stringify(rows), 400],
      ['jsonl', rows.map((r) => JSON.stringify(r)).join('\n'), 401],
    ] as const) {
      const r = await fuzzFile(`data.${ext}`, Buffer.from(content), 150, seed, (p) =>
        loadDataset(p, { skipBadRows: false }),
      );
      t.diagnostic(`${ext}: ${r.parsed} parsed, ${r.refused} refused`);
      assert.ok(r.refused > 0);
    }
  });

  it('gRPC messages: mutated bytes decode or fail with an Error, and a decoded Hello is judged', () => {
    const random = rng(500);
    const hello = WorkerMessage.encode({
      body: {
        $case: 'hello',
        value: {
          protocolVersion: PROTOCOL_VERSION,
          runId: 'run-a',
          workerId: 'w0',
          capabilities: { backend: 'wasm', deviceMemoryBytes: 0, maxInFlight: 2, nodeName: '' },
        },
      },
    }).finish();
    const result = WorkerMessage.encode({
      body: {
        $case: 'result',
        value: { id: 7, step: 1, kind: 0, lossSum: 12.5, supervisedTokens: 40, gradNorm: 0.5 },
      },
    }).finish();
    const welcome = CoordinatorMessage.encode({
      body: {
        $case: 'welcome',
        value: {
          runId: 'run-a',
          workerId: 'w0',
          runConfigJson: '{}',
          modelFingerprint: 'fp',
          step: 3,
          heartbeatIntervalMs: 1000,
          frameKey: Buffer.alloc(32, 1),
        },
      },
    }).finish();
    let decoded = 0;
    for (let i = 0; i < 600; i++) {
      const original = [hello, result, welcome][i % 3]!;
      const bytes = mutate(original, random);
      try {
        const m = i % 3 === 2 ? CoordinatorMessage.decode(bytes) : WorkerMessage.decode(bytes);
        decoded++;
        if (m.body?.$case === 'hello') refusalOf(m.body.value, 'run-a', new Set());
      } catch (err) {
        assert.ok(err instanceof Error, `mutation ${i}: threw ${String(err)}`);
      }
    }
    assert.ok(decoded > 0);
  });
});

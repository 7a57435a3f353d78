// How fast `lora-mpt fetch` stages a large file, against a plain download of the same bytes in the
// same run: a 256 MiB LFS-style file served on loopback (test/support/hub-server.ts, the Hub's API
// shape), staged by `lora-mpt fetch` (streamed to blobs/*.incomplete, sha256 checked, renamed and
// linked) and fetched by `curl -o` (no checks). The ratio is what staging's checks and layout cost.
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTinyHub } from '../test/support/hub-server.ts';

const BIN = fileURLToPath(new URL('../bin/lora-mpt.mjs', import.meta.url));
const SIZE = 256 * 2 ** 20;
const COMMIT = 'f'.repeat(40);

/** Runs a command to its end (asynchronously: the server answering it lives in this process). */
function timed(cmd: string, args: readonly string[]): Promise<number> {
  const t0 = performance.now();
  return new Promise((ok, fail) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.on('close', (code) =>
      code === 0
        ? ok((performance.now() - t0) / 1000)
        : fail(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${err}`)),
    );
  });
}

export async function run(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'lora-mpt-bench-fetch-'));
  const source = join(root, 'source');
  mkdirSync(source);
  const config = fileURLToPath(new URL('../test/fixtures/mpt/h6-all/config.json', import.meta.url));
  writeFileSync(join(source, 'config.json'), readFileSync(config));
  const big = Buffer.alloc(SIZE);
  for (let o = 0; o < SIZE; o += 2 ** 16) randomFillSync(big, o, 2 ** 16);
  writeFileSync(join(source, 'model.safetensors'), big);
  const hub = await startTinyHub({ repoId: 'bench/big', source, commit: COMMIT });
  try {
    const url = `${hub.endpoint}/bench/big/resolve/${COMMIT}/model.safetensors`;
    // The stand-in Hub hashes the file for its listing once; not part of either measurement.
    await (await fetch(`${hub.endpoint}/api/models/bench/big/revision/main`)).arrayBuffer();
    const rows: string[] = [];
    for (let i = 0; i < 2; i++) {
      const curl = await timed('curl', ['-sf', '-o', join(root, `curl-${i}`), url]);
      const fetch = await timed(process.execPath, [
        BIN,
        'fetch',
        '--repo_id',
        'bench/big',
        '--endpoint',
        hub.endpoint,
        '--cache_dir',
        join(root, `cache-${i}`),
        '--log_format',
        'json',
      ]);
      // What starting a lora-mpt process costs by itself (tsx compiles the sources on start).
      const start = await timed(process.execPath, [BIN, '--version']);
      const mbs = (s: number) => (SIZE / 2 ** 20 / s).toFixed(0);
      const net = fetch - start;
      rows.push(
        `run ${i + 1}: curl ${curl.toFixed(2)} s (${mbs(curl)} MiB/s); lora-mpt fetch ${fetch.toFixed(2)} s, of which process start ${start.toFixed(2)} s: ${net.toFixed(2)} s staging (${mbs(net)} MiB/s, sha256 checked); staging/curl time ${(net / curl).toFixed(2)}`,
      );
    }
    console.log(
      `256 MiB on loopback, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    for (const r of rows) console.log(r);
  } finally {
    await hub.close();
    rmSync(root, { recursive: true, force: true });
  }
}

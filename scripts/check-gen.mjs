#!/usr/bin/env node
// `npm run gen:check`: regenerates src/proto from proto/ into a scratch folder and fails when the
// committed generated code differs (someone edited a .proto and forgot `npm run gen`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else out.push(p);
  }
  return out;
}

const scratch = mkdtempSync(join(tmpdir(), 'lora-mpt-gen-'));
try {
  const gen = spawnSync('npx', ['buf', 'generate', 'proto', '--output', scratch], { stdio: 'inherit' });
  if (gen.status !== 0) process.exit(gen.status ?? 1);
  const fresh = join(scratch, 'src/proto');
  const want = files(fresh)
    .map((f) => relative(fresh, f))
    .sort();
  const have = files('src/proto')
    .map((f) => relative('src/proto', f))
    .sort();
  const stale = [];
  for (const f of new Set([...want, ...have])) {
    const a = want.includes(f) ? readFileSync(join(fresh, f), 'utf8') : null;
    const b = have.includes(f) ? readFileSync(join('src/proto', f), 'utf8') : null;
    if (a !== b) stale.push(f);
  }
  if (stale.length > 0) {
    console.error(`src/proto is stale for: ${stale.join(', ')}. Run \`npm run gen\` and commit the result.`);
    process.exit(1);
  }
  console.log(`src/proto is up to date (${want.length} generated files)`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

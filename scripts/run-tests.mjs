#!/usr/bin/env node
// `npm test [-- PATH...]`: runs every test/**/*.test.ts (or those under the given paths) with
// node's built-in test runner, TypeScript loaded through tsx. Exits with the runner's status.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function collect(path, out) {
  const st = statSync(path);
  if (st.isFile()) {
    if (path.endsWith('.test.ts')) out.push(path);
    return out;
  }
  for (const name of readdirSync(path).sort()) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    collect(join(path, name), out);
  }
  return out;
}

const roots = process.argv.slice(2);
const files = (roots.length > 0 ? roots : ['test']).flatMap((r) => collect(r, []));
if (files.length === 0) {
  console.error(`no test files found under ${roots.join(', ') || 'test'}`);
  process.exit(1);
}
// With the GPU binding built, test files run one at a time: each TensorFlow process takes GPU memory
// (growing, not all of it: TF_FORCE_GPU_ALLOW_GROWTH), and the GPU, not the CPU, is what they share.
const gpu =
  process.env.LORA_MPT_REQUIRE_GPU === '1' ||
  existsSync('node_modules/@tensorflow/tfjs-node-gpu/lora-mpt-build.stamp');
const concurrency = gpu ? ['--test-concurrency=1'] : [];
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', ...concurrency, ...files],
  {
    stdio: 'inherit',
  },
);
process.exit(result.status ?? 1);

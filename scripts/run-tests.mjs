#!/usr/bin/env node
// `npm test [-- PATH...]`: runs every test/**/*.test.ts (or those under the given paths) with
// node's built-in test runner, TypeScript loaded through tsx. Exits non-zero when any file fails.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
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
// Otherwise two groups, one after the other. Files under test/e2e, test/deploy, test/security and
// test/scale run whole systems (a coordinator and worker processes, nats-servers, containers,
// Chromium, Prometheus), some with deadlines that adapt to the machine's speed, and keep the machine
// to themselves: one file at a time. Every other file runs at least two at a time (node's default is
// one fewer than the cores, which is one on a 2-core machine, where most files leave a core idle
// waiting on their child processes and servers: measured there, 424 s one at a time against 258 s
// two at a time for the 161 files outside e2e and deploy).
const alone = (f) => /(^|[/\\])test[/\\](e2e|deploy|security|scale)[/\\]/.test(f);
const together = gpu ? [] : files.filter((f) => !alone(f));
const serial = gpu ? files : files.filter(alone);
const run = (group, concurrency) =>
  group.length === 0
    ? 0
    : (spawnSync(
        process.execPath,
        ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, ...group],
        { stdio: 'inherit' },
      ).status ?? 1);
const first = run(together, Math.max(2, availableParallelism() - 1));
const second = run(serial, 1);
if (together.length > 0 && serial.length > 0) {
  console.log(
    `run-tests: ${together.length} files two or more at a time: ${first === 0 ? 'passed' : 'FAILED'}; ` +
      `${serial.length} whole-system files one at a time: ${second === 0 ? 'passed' : 'FAILED'}`,
  );
}
process.exit(first !== 0 ? first : second);

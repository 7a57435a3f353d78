#!/usr/bin/env node
// `npm run gen:k8s`: renders the Helm chart with its default values (credentials from the Secret
// lora-mpt-auth rather than generated) into
// deploy/k8s/base/lora-mpt.yaml, the plain manifests of the kustomize base (one source: the chart).
// Rendered for Kubernetes 1.31, the oldest version with the Job successPolicy the workers' Job
// uses. With --check it fails when the committed file differs from a fresh render (a test runs it).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tools = execFileSync(process.execPath, [join(root, 'scripts', 'k8s-tools.mjs')], {
  encoding: 'utf8',
}).trim();
const rendered = execFileSync(
  join(tools, 'helm', 'helm'),
  [
    'template',
    'lora-mpt',
    join(root, 'helm', 'lora-mpt'),
    '--namespace',
    'lora-mpt',
    '--kube-version',
    '1.31.0',
    // The chart makes random credentials at install; plain manifests name a Secret the user makes
    // with `lora-mpt certs` (deploy/k8s/base/kustomization.yaml), so this render is reproducible.
    '--set',
    'auth.existingSecret=lora-mpt-auth',
    // The `helm test` pod is for `helm test`; applied with the rest it would probe a run not yet up.
    '--skip-tests',
  ],
  { encoding: 'utf8' },
);
const text = [
  '# Generated from helm/lora-mpt with its default values by `npm run gen:k8s`; do not edit.',
  '# Change the chart (or patch this with a kustomize overlay) instead.',
  rendered
    .split('\n')
    .filter((l) => !/^\s*helm\.sh\/chart:/.test(l) && !/^# Source:/.test(l))
    .map((l) => l.replace('app.kubernetes.io/managed-by: Helm', 'app.kubernetes.io/managed-by: kustomize'))
    .join('\n')
    .trim(),
  '',
].join('\n');
const target = join(root, 'deploy', 'k8s', 'base', 'lora-mpt.yaml');
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {}
  if (current !== text) {
    console.error('deploy/k8s/base/lora-mpt.yaml is stale: run `npm run gen:k8s` and commit the result.');
    process.exit(1);
  }
  console.log('deploy/k8s/base/lora-mpt.yaml is up to date with helm/lora-mpt');
} else {
  writeFileSync(target, text);
  console.log(`wrote ${target}`);
}

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { coordinatorFlags } from '../../src/cli/coordinator.ts';
import { parseFlags } from '../../src/cli/flags.ts';
import { workerFlags } from '../../src/cli/worker.ts';
import { createTrainingMetrics } from '../../src/metrics/training-metrics.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const chart = join(root, 'helm', 'lora-mpt');
const tools = execFileSync(process.execPath, [join(root, 'scripts', 'k8s-tools.mjs')], {
  encoding: 'utf8',
}).trim();
const helm = (...args: string[]) => execFileSync(join(tools, 'helm', 'helm'), args, { encoding: 'utf8' });

interface K8sObject {
  kind: string;
  metadata: { name: string };
  spec?: {
    template?: {
      spec: { containers: { args: string[]; resources?: { limits?: Record<string, unknown> } }[] };
    };
  };
}

function render(...set: string[]): K8sObject[] {
  const text = helm('template', 'demo', chart, ...set.flatMap((s) => ['--set', s]));
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const kinds = (objs: K8sObject[]) => objs.map((o) => o.kind).sort();
const container = (objs: K8sObject[], name: string) =>
  objs.find((o) => o.metadata.name === name && o.spec?.template)!.spec!.template!.spec.containers[0]!;

describe('Helm chart helm/lora-mpt', () => {
  it('passes helm lint', () => {
    assert.match(helm('lint', chart), /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('renders coordinator, GPU workers, a 3-server NATS cluster, storage, dashboard and network policies', () => {
    const objs = render();
    assert.deepEqual(kinds(objs), [
      'ConfigMap',
      'ConfigMap',
      'Deployment',
      'NetworkPolicy',
      'NetworkPolicy',
      'PersistentVolumeClaim',
      'Service',
      'Service',
      'Service',
      'Service',
      'StatefulSet',
      'StatefulSet',
    ]);
    assert.equal(container(objs, 'demo-lora-mpt-worker').resources?.limits?.['nvidia.com/gpu'], 1);
    const nats = objs.find(
      (o) => o.metadata.name === 'demo-lora-mpt-nats' && o.kind === 'ConfigMap',
    ) as unknown as {
      data: { 'nats.conf': string };
    };
    assert.equal((nats.data['nats.conf'].match(/nats:\/\/demo-lora-mpt-nats-\d/g) ?? []).length, 3);
  });

  it('gives the coordinator and worker arguments that the lora-mpt commands accept', () => {
    const objs = render('run.training.group_by_length=false', 'coordinator.minWorkers=4');
    const c = parseFlags(coordinatorFlags, container(objs, 'demo-lora-mpt-coordinator').args.slice(1));
    assert.equal(c.base_model, '/workspace/models/mpt-7b-instruct');
    assert.deepEqual(c.lora_target_modules, ['Wqkv']);
    assert.equal(c.learning_rate, 1e-4);
    assert.equal(c.group_by_length, false);
    assert.equal(c.min_workers, 4);
    assert.equal(c.nats, 'nats://demo-lora-mpt-nats:4222');
    const w = parseFlags(workerFlags, container(objs, 'demo-lora-mpt-worker').args.slice(1));
    assert.equal(w.coordinator, 'demo-lora-mpt-coordinator:50051');
    assert.equal(w.worker_id, '$(POD_NAME)');
    assert.equal(w.backend, 'tensorflow');
  });

  it('adds a ServiceMonitor when asked and uses an external NATS when the bundled one is off', () => {
    const objs = render(
      'metrics.serviceMonitor.enabled=true',
      'nats.enabled=false',
      'nats.url=nats://bus:4222',
    );
    assert.ok(kinds(objs).includes('ServiceMonitor'));
    assert.ok(!objs.some((o) => o.metadata.name.includes('-nats')));
    assert.ok(container(objs, 'demo-lora-mpt-worker').args.includes('nats://bus:4222'));
  });

  it('has a Grafana dashboard that queries only metrics lora-mpt processes expose', async () => {
    const exposed = new Set<string>();
    for (const role of ['coordinator', 'worker'] as const) {
      const text = await createTrainingMetrics(role).registry.metrics();
      for (const m of text.matchAll(/^# TYPE (\S+) /gm)) exposed.add(m[1]!);
    }
    const dashboard = JSON.parse(readFileSync(join(chart, 'files', 'dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    assert.ok(dashboard.panels.length >= 10);
    for (const p of dashboard.panels) {
      for (const t of p.targets) {
        for (const m of t.expr.matchAll(/lora_mpt_[a-z_]+/g)) {
          const name = m[0].replace(/_(bucket|sum|count)$/, '');
          assert.ok(exposed.has(name), `panel "${p.title}" queries ${m[0]}, which no process exposes`);
        }
      }
    }
  });

  it('matches the plain manifests in deploy/k8s (generated from it)', () => {
    execFileSync(process.execPath, [join(root, 'scripts', 'gen-k8s.mjs'), '--check'], { encoding: 'utf8' });
    const k = execFileSync(join(tools, 'kubectl', 'kubectl'), ['kustomize', join(root, 'deploy', 'k8s')], {
      encoding: 'utf8',
    });
    assert.match(k, /namespace: lora-mpt/);
    assert.equal((k.match(/^kind: StatefulSet$/gm) ?? []).length, 2);
  });
});

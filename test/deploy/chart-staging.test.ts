import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fetchFlags } from '../../src/cli/fetch.ts';
import { parseFlags } from '../../src/cli/flags.ts';
import {
  type Container,
  find,
  type JobSpec,
  type K8sObject,
  render,
  renderError,
  renderText,
  validate,
  validatorVenv,
} from './chart.ts';

// Staging (helm/lora-mpt/templates/_staging.tpl): a Hub id as run.baseModel / run.dataPath is fetched
// onto the volume by init containers of the coordinator, whose exit 2 fails the Job at once.
const coordinatorJob = (objs: K8sObject[]) =>
  find(objs, 'Job', 'demo-lora-mpt-coordinator').spec as unknown as JobSpec;
const env = (c: Container, name: string) => c.env?.find((e) => e.name === name);

describe('chart staging of the model and data', () => {
  it("runs lora-mpt fetch for a Hub model and dataset before the operator's init containers, with the flags fetch accepts", () => {
    const job = coordinatorJob(render({ valuesFiles: ['staging.yaml'] }));
    const pod = job.template.spec;
    assert.deepEqual(
      pod.initContainers?.map((c) => c.name),
      ['stage-model', 'stage-data', 'check-model'],
    );
    const coordinator = pod.containers[0]!;
    for (const [i, repo, type] of [
      [0, 'mosaicml/mpt-7b-instruct', 'model'],
      [1, 'tatsu-lab/alpaca', 'dataset'],
    ] as const) {
      const c: Container = pod.initContainers![i]!;
      assert.equal(c.args?.[0], 'fetch');
      const f = parseFlags(fetchFlags, c.args!.slice(1));
      assert.equal(f.repo_id, repo);
      assert.equal(f.repo_type, type);
      assert.equal(f.endpoint, 'https://hf-mirror.example.com');
      assert.equal(f.log_format, 'json');
      assert.equal(c.image, coordinator.image);
      // The same cache the coordinator resolves the id in, on the volume, mounted writable.
      assert.deepEqual(env(c, 'HF_HOME'), env(coordinator, 'HF_HOME'));
      assert.deepEqual(env(c, 'HF_TOKEN'), {
        name: 'HF_TOKEN',
        valueFrom: { secretKeyRef: { name: 'hf-token', key: 'HF_TOKEN' } },
      } as unknown);
      const mount = c.volumeMounts?.find((m) => m.name === 'workspace');
      assert.equal(mount?.mountPath, '/workspace');
      assert.notEqual(mount?.readOnly, true);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
    }
  });

  it('fails the coordinator Job at once when a staging container exits 2 (a repo that is not a checkpoint)', () => {
    const rules = coordinatorJob(render({ valuesFiles: ['staging.yaml'] })).podFailurePolicy!.rules;
    const failJob = rules.filter((r) => r.action === 'FailJob').map((r) => r.onExitCodes);
    assert.deepEqual(failJob, [
      { containerName: 'coordinator', operator: 'In', values: [2] },
      { containerName: 'stage-model', operator: 'In', values: [2] },
      { containerName: 'stage-data', operator: 'In', values: [2] },
    ]);
    // The Job API: containerName names a container or an init container of the pod template.
    const pod = coordinatorJob(render({ valuesFiles: ['staging.yaml'] })).template.spec;
    const names = [...pod.containers, ...(pod.initContainers ?? [])].map((c) => c.name);
    for (const r of failJob) assert.ok(names.includes(r!.containerName!), r!.containerName);
  });

  it('stages nothing for a path on the volume, or when staging is off; a URL list replaces the Hub API', () => {
    assert.equal(coordinatorJob(render()).template.spec.initContainers, undefined);
    const off = render({ valuesFiles: ['staging.yaml'], set: ['staging.enabled=false'] });
    assert.deepEqual(
      coordinatorJob(off).template.spec.initContainers?.map((c) => c.name),
      ['check-model'],
    );
    const listed = render({
      set: ['run.baseModel=acme/mpt-tuned', 'staging.urlList=/workspace/acme-files.txt'],
    });
    const c = coordinatorJob(listed).template.spec.initContainers![0]!;
    assert.equal(parseFlags(fetchFlags, c.args!.slice(1)).url_list, '/workspace/acme-files.txt');
    // Workers never stage: they read what the coordinator's pod put on the volume.
    const worker = find(listed, 'Job', 'demo-lora-mpt-worker').spec as unknown as JobSpec;
    assert.equal(worker.template.spec.initContainers, undefined);
  });

  it('stages in the JobSet form too', () => {
    const objs = render({ valuesFiles: ['staging.yaml'], set: ['jobSet.enabled=true'] });
    const js = find(objs, 'JobSet', 'demo-lora-mpt').spec as {
      replicatedJobs: { name: string; template: { spec: JobSpec } }[];
    };
    const coordinator = js.replicatedJobs.find((r) => r.name === 'coordinator')!.template.spec;
    assert.equal(coordinator.template.spec.initContainers?.[0]?.name, 'stage-model');
  });

  it('refuses a misspelt staging value or an endpoint that is not a URL', () => {
    for (const set of [
      'staging.endpont=https://x',
      'staging.endpoint=hf-mirror',
      'staging.urlList=files.txt',
    ]) {
      assert.match(
        renderError({ set: [set] }) ?? 'rendered',
        /values don't meet the specifications|schema/i,
        set,
      );
    }
  });

  const venv = validatorVenv();
  it(
    'renders valid objects for Kubernetes 1.29 and 1.32 with staging on',
    venv !== undefined || process.env.CI ? {} : { skip: 'strict validator not installed' },
    () => {
      for (const version of ['1.29', '1.32']) {
        const text = renderText({ valuesFiles: ['staging.yaml'], kubeVersion: `${version}.0` });
        const r = validate(venv as string, text, [version]);
        assert.ok(r.ok, r.output);
      }
    },
  );
});

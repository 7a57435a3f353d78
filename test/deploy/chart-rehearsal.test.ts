import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { coordinatorFlags } from '../../src/cli/coordinator.ts';
import { parseFlags } from '../../src/cli/flags.ts';
import { backendModelMismatch, syntheticProfileOf } from '../../src/cli/synthetic-flags.ts';
import { workerFlags } from '../../src/cli/worker.ts';
import { isSyntheticModel } from '../../src/families/synthetic-model.ts';
import { GPU_PROFILES } from '../../src/model/gpu-profiles.ts';
import {
  type Container,
  chartDir,
  expandedArgs,
  find,
  type JobSpec,
  type K8sObject,
  type RenderOptions,
  render,
  renderError,
} from './chart.ts';

// run.rehearsal=true: the planned run on synthetic workers (docs/scale.md#rehearsal). What the pods
// would run is checked by parsing their arguments with the commands' own flag tables.
const INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
const job = (objs: K8sObject[], name: string) =>
  (find(objs, 'Job', name).spec as unknown as JobSpec).template;

function pods(o: RenderOptions) {
  const objs = render(o);
  const coordinator = job(objs, 'demo-lora-mpt-coordinator').spec.containers[0]!;
  const worker = job(objs, 'demo-lora-mpt-worker').spec.containers[0]!;
  return {
    objs,
    worker,
    c: parseFlags(coordinatorFlags, expandedArgs(coordinator, objs).slice(1)),
    w: parseFlags(workerFlags, expandedArgs(worker, objs, { [INDEX]: '5' }).slice(1)),
  };
}

const gpuKeys = (c: Container) =>
  [...Object.keys(c.resources?.requests ?? {}), ...Object.keys(c.resources?.limits ?? {})].filter((k) =>
    k.includes('gpu'),
  );

describe('Helm chart: run.rehearsal', () => {
  it('runs the workers on the synthetic backend with the GPU profile and MFU the values ask for, requesting no GPU', () => {
    const { worker, w, c } = pods({ valuesFiles: ['rehearsal.yaml'] });
    assert.equal(w.backend, 'synthetic');
    assert.equal(w.gpu_profile, 'h100-80gb');
    assert.equal(w.gpu_mfu, 0.6);
    const profile = syntheticProfileOf(w, {});
    assert.equal(profile?.device, GPU_PROFILES['h100-80gb']);
    assert.deepEqual(gpuKeys(worker), [], 'no nvidia.com/gpu request or limit');
    assert.deepEqual(worker.resources, {
      requests: { cpu: '4', memory: '48Gi' },
      limits: { memory: '64Gi' },
    });
    assert.equal(
      worker.env?.find((e) => e.name === 'LORA_MPT_REQUIRE_GPU'),
      undefined,
      'a worker without a GPU must not demand one',
    );
    // The coordinator reads the model as a config: a synthetic worker accepts it, and the coordinator
    // of a synthetic model is the one that prints the rehearsal summary.
    assert.equal(c.base_model, 'synthetic:/workspace/models/mpt-7b-instruct');
    assert.ok(isSyntheticModel(c.base_model));
    assert.equal(backendModelMismatch(w.backend, c.base_model), undefined);
    assert.equal(c.max_steps, 20);
    assert.equal(c.output_dir, '/workspace/outputs/lora-mpt-rehearsal', 'never in the real run’s output');
  });

  it('keeps a named config as given, and changes nothing of a real run', () => {
    const named = pods({ set: ['run.rehearsal=true', 'run.baseModel=synthetic:mpt-7b'] });
    assert.equal(named.c.base_model, 'synthetic:mpt-7b');
    assert.equal(named.w.gpu_profile, 'a100-80gb', 'the default profile');
    assert.equal(named.w.gpu_mfu, 0.5);
    const real = pods({});
    assert.equal(real.w.backend, 'tensorflow');
    assert.equal(real.c.base_model, '/workspace/models/mpt-7b-instruct');
    assert.deepEqual(gpuKeys(real.worker), ['nvidia.com/gpu', 'nvidia.com/gpu']);
  });

  it('gives the JobSet the same rehearsal workers', () => {
    const objs = render({ valuesFiles: ['rehearsal.yaml'], set: ['jobSet.enabled=true'] });
    const rjs = (
      find(objs, 'JobSet', 'demo-lora-mpt').spec as {
        replicatedJobs: { name: string; template: { spec: JobSpec } }[];
      }
    ).replicatedJobs;
    const worker = rjs.find((r) => r.name === 'worker')!.template.spec.template.spec.containers[0]!;
    const w = parseFlags(workerFlags, expandedArgs(worker, objs, { [INDEX]: '0' }).slice(1));
    assert.equal(w.backend, 'synthetic');
    assert.deepEqual(gpuKeys(worker), []);
  });

  it('offers exactly the GPU profiles the synthetic backend knows, and refuses others and an MFU outside (0, 1]', () => {
    const schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8'));
    assert.deepEqual(schema.properties.run.properties.gpuProfile.enum, Object.keys(GPU_PROFILES));
    assert.match(renderError({ set: ['run.gpuProfile=a100'] }) ?? '', /run\.gpuProfile/);
    assert.match(renderError({ set: ['run.gpuProfile=none'] }) ?? '', /run\.gpuProfile/);
    for (const mfu of ['0', '1.5', '-0.1']) {
      assert.match(renderError({ set: [`run.gpuMfu=${mfu}`] }) ?? '', /run\.gpuMfu/, `gpuMfu ${mfu}`);
    }
    assert.equal(renderError({ set: ['run.gpuMfu=1'] }), undefined);
    assert.match(renderError({ set: ['run.rehearsal=yes'] }) ?? '', /run\.rehearsal/);
    assert.match(renderError({ set: ['run.rehersal=true'] }) ?? '', /rehersal/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import {
  find,
  type JobSpec,
  type K8sObject,
  parseObjects,
  type RenderOptions,
  renderNotes,
  renderText,
  validate,
  validateMany,
  validatorVenv,
} from './chart.ts';

// The default values and seven other value sets (test/deploy/values/*.yaml), each rendered for the
// oldest Kubernetes the chart supports and for a recent one.
const VALUE_SETS: Readonly<Record<string, RenderOptions>> = {
  default: {},
  jobset: { valuesFiles: ['jobset.yaml'] },
  'external NATS': { valuesFiles: ['external-nats.yaml'] },
  'ServiceMonitor, PrometheusRule and dashboard': { valuesFiles: ['monitoring.yaml'] },
  '8 workers with affinity, tolerations, priorityClass, imagePullSecrets': {
    valuesFiles: ['eight-gpus.yaml'],
  },
  'existing claim and ServiceAccount, 1 NATS server': { valuesFiles: ['existing-claim.yaml'] },
  'every extension point (labels, digest, args, volumes, init containers, runtime class)': {
    valuesFiles: ['extensions.yaml'],
  },
  'rehearsal: synthetic workers, no GPU requested': { valuesFiles: ['rehearsal.yaml'] },
  'ReadWriteOnce volume, CPU workers (the kube-play test)': { valuesFiles: ['kube-play.yaml'] },
  'existing ReadWriteOnce claim': {
    set: ['storage.existingClaim=prepared', 'storage.accessModes={ReadWriteOnce}'],
  },
};
const VERSIONS = ['1.29', '1.32'] as const;

const venv = validatorVenv();
// Under CI the validator must be there (scripts/setup-k8s-validate.sh); elsewhere its tests skip.
const needsValidator =
  venv !== undefined || process.env.CI
    ? {}
    : { skip: 'strict validator not installed: run bash scripts/setup-k8s-validate.sh' };
const validator = () => {
  assert.ok(venv, 'the strict validator is not installed: bash scripts/setup-k8s-validate.sh');
  return venv;
};

/** The Jobs of a render, including those a JobSet makes from its templates. */
function jobs(objs: K8sObject[]): { name: string; spec: JobSpec }[] {
  const out = objs
    .filter((o) => o.kind === 'Job')
    .map((o) => ({ name: o.metadata.name, spec: o.spec as unknown as JobSpec }));
  for (const js of objs.filter((o) => o.kind === 'JobSet')) {
    for (const rj of (js.spec as { replicatedJobs: { name: string; template: { spec: JobSpec } }[] })
      .replicatedJobs)
      out.push({ name: `${js.metadata.name}/${rj.name}`, spec: rj.template.spec });
  }
  return out;
}

/** Every value set's render for `version`, validated by one run of the validator (made once). */
const validations = new Map<string, Record<string, { ok: boolean; output: string }>>();
function validated(version: string) {
  let v = validations.get(version);
  if (v === undefined) {
    const texts = Object.fromEntries(
      Object.entries(VALUE_SETS).map(([name, o]) => [
        name,
        renderText({ ...o, kubeVersion: `${version}.0` }),
      ]),
    );
    v = validateMany(validator(), texts, [version]);
    validations.set(version, v);
  }
  return v;
}

describe('rendered objects of helm/lora-mpt', () => {
  for (const name of Object.keys(VALUE_SETS)) {
    it(
      `are valid for Kubernetes ${VERSIONS.join(' and ')}, unknown fields rejected: ${name}`,
      needsValidator,
      () => {
        for (const version of VERSIONS) {
          const r = validated(version)[name]!;
          assert.ok(r.ok, `${name}, Kubernetes ${version}:\n${r.output}`);
        }
      },
    );
  }

  it('follow the Job API rules that the schemas cannot express', () => {
    for (const [name, options] of Object.entries(VALUE_SETS)) {
      for (const version of VERSIONS) {
        for (const job of jobs(parseObjects(renderText({ ...options, kubeVersion: `${version}.0` })))) {
          const where = `${name}, ${version}: ${job.name}`;
          const s = job.spec;
          if (s.podFailurePolicy) {
            assert.equal(
              s.template.spec.restartPolicy,
              'Never',
              `${where}: podFailurePolicy needs restartPolicy Never`,
            );
            assert.equal(
              s.podReplacementPolicy ?? 'Failed',
              'Failed',
              `${where}: podFailurePolicy allows only Failed`,
            );
            const containers = s.template.spec.containers.map((c) => c.name);
            for (const rule of s.podFailurePolicy.rules) {
              const c = rule.onExitCodes?.containerName;
              if (c !== undefined) assert.ok(containers.includes(c), `${where}: no container ${c}`);
              assert.ok(
                !rule.onExitCodes?.values.includes(0),
                `${where}: exit code 0 in a podFailurePolicy rule`,
              );
            }
          }
          if (s.successPolicy)
            assert.equal(s.completionMode, 'Indexed', `${where}: successPolicy needs Indexed`);
          if (s.completionMode === 'Indexed')
            assert.ok(s.completions !== undefined && (s.parallelism ?? 1) <= s.completions, where);
        }
      }
    }
  });

  it(
    'print NOTES with the wait command of the mode rendered and a fetch pod that is a valid Pod',
    needsValidator,
    () => {
      const jobNotes = renderNotes({ namespace: 'ml' });
      assert.match(
        jobNotes,
        /kubectl -n ml wait --for=condition=complete --timeout=-1s job\/demo-lora-mpt-coordinator\n/,
      );
      assert.match(jobNotes, /port-forward svc\/demo-lora-mpt-coordinator 9400/);
      assert.match(
        renderNotes({ valuesFiles: ['jobset.yaml'] }),
        /wait --for=condition=completed --timeout=-1s jobset\/demo-lora-mpt\n/,
      );
      const overrides = /--overrides='(\{.*\})'/.exec(jobNotes)?.[1];
      assert.ok(overrides, jobNotes);
      const pod = { ...JSON.parse(overrides), kind: 'Pod', metadata: { name: 'demo-lora-mpt-fetch' } };
      const r = validate(validator(), stringify(pod), VERSIONS);
      assert.ok(r.ok, r.output);
    },
  );
});

describe('the strict validator (scripts/k8s-validate.py)', () => {
  const base = parseObjects(renderText({ valuesFiles: ['jobset.yaml', 'monitoring.yaml'] }));
  const mutated = (kind: string, name: string, change: (o: Record<string, unknown>) => void) => {
    const copy = structuredClone(find(base, kind, name)) as unknown as Record<string, unknown>;
    change(copy);
    return stringify(copy);
  };

  it(
    'rejects an unknown field in a core object, a JobSet, a Job template inside it, a ServiceMonitor and a PrometheusRule',
    needsValidator,
    () => {
      const cases = [
        mutated('Service', 'demo-lora-mpt-coordinator', (o) => {
          (o.spec as Record<string, unknown>).clusterIp = 'None';
        }),
        mutated('JobSet', 'demo-lora-mpt', (o) => {
          (o.spec as Record<string, unknown>).sucessPolicy = {};
        }),
        mutated('JobSet', 'demo-lora-mpt', (o) => {
          const rj = (
            o.spec as {
              replicatedJobs: { template: { spec: { template: { spec: Record<string, unknown> } } } }[];
            }
          ).replicatedJobs[1]!;
          rj.template.spec.template.spec.restartPolicyy = 'Never';
        }),
        mutated('ServiceMonitor', 'demo-lora-mpt', (o) => {
          (o.spec as { endpoints: Record<string, unknown>[] }).endpoints[0]!.scrapeInterval = '5s';
        }),
        mutated('PrometheusRule', 'demo-lora-mpt', (o) => {
          (o.spec as { groups: { rules: Record<string, unknown>[] }[] }).groups[0]!.rules[0]!.forDuration =
            '5m';
        }),
      ];
      // One validator run for the five (each file's lines apart); each must fail on its own field.
      const fields = ['clusterIp', 'sucessPolicy', 'restartPolicyy', 'scrapeInterval', 'forDuration'];
      const results = validateMany(validator(), Object.fromEntries(cases.map((t, i) => [fields[i]!, t])), [
        '1.32',
      ]);
      for (const [i, field] of fields.entries()) {
        const r = results[field]!;
        assert.ok(!r.ok, `accepted:\n${cases[i]}`);
        assert.match(r.output, new RegExp(`FAIL .*${field}`));
      }
    },
  );

  it('rejects a kind it has no schema for instead of passing it', needsValidator, () => {
    const r = validate(
      validator(),
      stringify({
        apiVersion: 'monitoring.coreos.com/v1',
        kind: 'PodMonitor',
        metadata: { name: 'x' },
        spec: {},
      }),
      ['1.32'],
    );
    assert.ok(!r.ok);
    assert.match(r.output, /Couldn't find schema for kind PodMonitor/);
  });
});

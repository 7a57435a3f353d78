import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFlags } from '../../src/cli/flags.ts';
import { workerFlags } from '../../src/cli/worker.ts';
import { expandedArgs, find, type K8sObject, type PodSpec, render } from './chart.ts';

// The chart's `helm test` pod (templates/tests/probe.yaml): what it runs and with which credentials.
// test/deploy/kube-play.test.ts runs it against a live run.
describe('helm test of helm/lora-mpt', () => {
  const testPod = (objs: K8sObject[]) =>
    find(objs, 'Pod', 'demo-lora-mpt-test') as K8sObject & { spec: PodSpec };

  it('is a test hook pod running `lora-mpt probe` against the coordinator Service and NATS with the run credentials', () => {
    const objs = render({ set: ['coordinator.metricsPort=9500'] });
    const pod = testPod(objs);
    assert.equal(pod.metadata.annotations?.['helm.sh/hook'], 'test');
    assert.equal(pod.spec.restartPolicy, 'Never');
    const c = pod.spec.containers[0]!;
    assert.equal(
      c.image,
      find(objs, 'Job', 'demo-lora-mpt-coordinator').spec && 'ghcr.io/lora-mpt/lora-mpt:0.1.0',
    );
    const args = expandedArgs(c, objs);
    assert.equal(args[0], 'probe');
    const flag = (name: string) => args[args.indexOf(`--${name}`) + 1];
    assert.equal(flag('coordinator_url'), 'http://demo-lora-mpt-coordinator:9500');
    assert.equal(flag('nats'), 'nats://demo-lora-mpt-nats:4222');
    assert.equal(flag('nats_user'), 'lora-mpt');
    // The worker's own NATS flags: the probe connects as the run's members do.
    const worker = find(objs, 'Job', 'demo-lora-mpt-worker').spec as { template: { spec: PodSpec } };
    const w = parseFlags(
      workerFlags,
      expandedArgs(worker.template.spec.containers[0]!, objs, { [INDEX]: '0' }).slice(1),
    );
    assert.equal(flag('nats_password_file'), w.nats_password_file);
    assert.equal(flag('nats_ca'), w.nats_ca);
    // Only the NATS password and CA of the run's Secret are mounted.
    const auth = pod.spec.volumes?.find((v) => v.name === 'auth') as unknown as {
      secret: { secretName: string; items: { key: string }[] };
    };
    assert.equal(auth.secret.secretName, 'demo-lora-mpt-auth');
    assert.deepEqual(auth.secret.items.map((i) => i.key).sort(), ['nats-ca.crt', 'nats-password']);
  });

  it('runs with the pod security of the run pods and reaches NATS under the NetworkPolicy', () => {
    const objs = render();
    const pod = testPod(objs);
    const coordinator = find(objs, 'Job', 'demo-lora-mpt-coordinator').spec as {
      template: { spec: PodSpec };
    };
    assert.deepEqual(pod.spec.securityContext, coordinator.template.spec.securityContext);
    assert.deepEqual(
      pod.spec.containers[0]!.securityContext,
      coordinator.template.spec.containers[0]!.securityContext,
    );
    assert.equal(pod.spec.automountServiceAccountToken, false);
    const policy = find(objs, 'NetworkPolicy', 'demo-lora-mpt-nats').spec as {
      ingress: { from?: { podSelector: { matchLabels: Record<string, string> } }[] }[];
    };
    const allowed = policy.ingress[0]!.from![0]!.podSelector.matchLabels;
    for (const [k, v] of Object.entries(allowed)) assert.equal(pod.metadata.labels?.[k], v, k);
  });

  it('uses an external NATS and an existing Secret when the run does', () => {
    const objs = render({
      set: ['nats.enabled=false', 'nats.url=nats://nats.messaging:4222', 'auth.existingSecret=mine'],
    });
    const pod = testPod(objs);
    const args = expandedArgs(pod.spec.containers[0]!, objs);
    assert.equal(args[args.indexOf('--nats') + 1], 'nats://nats.messaging:4222');
    const auth = pod.spec.volumes?.find((v) => v.name === 'auth') as unknown as {
      secret: { secretName: string };
    };
    assert.equal(auth.secret.secretName, 'mine');
  });
});

const INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']";

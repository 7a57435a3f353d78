import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Container, find, type K8sObject, render } from './chart.ts';
import { ENV_SECRET_SUFFIX, kubePlan, type PlayPod } from './kube-play.ts';

// The kube-play test's rewrites of the rendered chart (kube-play.ts), checked without podman: what
// each pod becomes, so a change to the chart that the rewrites would carry wrongly fails here too.
const objs = render({ valuesFiles: ['kube-play.yaml'] });
const plan = kubePlan(objs, { natsImage: 'localhost/lora-mpt:dev', natsCommand: ['nats-server'] });
const F = 'demo-lora-mpt';
const INDEX = 'batch.kubernetes.io/job-completion-index';

interface PodDoc {
  kind: string;
  metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    hostname?: string;
    containers: (Container & { command?: string[]; livenessProbe?: { httpGet?: { port: unknown } } })[];
    volumes?: { name: string; secret?: { optional?: boolean; secretName: string } }[];
  };
}
const podDoc = (p: PlayPod) => p.docs.at(-1) as PodDoc;
const byName = (name: string) => {
  const p = plan.pods.find((x) => x.name === name);
  assert.ok(p, `${name} in [${plan.pods.map((x) => x.name).join(', ')}]`);
  return p;
};
const flag = (args: readonly string[] | undefined, name: string) => args?.[args.indexOf(`--${name}`) + 1];

describe('what the kube-play test runs for the rendered chart', () => {
  it('makes the pods the controllers would: one coordinator, one per completion index, one per NATS replica, the test pod', () => {
    assert.deepEqual(plan.pods.map((p) => [p.name, p.component]).sort(), [
      [`${F}-coordinator-pod`, 'coordinator'],
      [`${F}-nats-0`, 'nats'],
      [`${F}-test`, 'test'],
      [`${F}-worker-0`, 'worker'],
      [`${F}-worker-1`, 'worker'],
    ]);
  });

  it('gives each worker pod its completion index as the Job controller does, and the id the chart derives from it', () => {
    for (const i of [0, 1]) {
      const pod = podDoc(byName(`${F}-worker-${i}`));
      assert.equal(pod.metadata.annotations[INDEX], String(i));
      assert.equal(pod.metadata.labels[INDEX], String(i));
      assert.equal(pod.spec.hostname, `${F}-worker-${i}`);
      const c = pod.spec.containers[0]!;
      const env = c.env?.find((e) => e.name === 'JOB_COMPLETION_INDEX');
      assert.equal(env?.valueFrom?.fieldRef?.fieldPath, `metadata.annotations['${INDEX}']`);
      assert.equal(flag(c.args, 'worker_id'), `${F}-worker-${i}`);
      assert.equal(flag(c.args, 'tls_cert'), `/etc/lora-mpt/auth/${F}-worker-${i}.crt`);
      assert.ok(!c.args?.some((a) => a.includes('$(')), c.args?.join(' '));
    }
  });

  it("turns the coordinator's envFrom prefix into configMapKeyRefs and expands its $(FLAG_*) args from the ConfigMap", () => {
    const p = byName(`${F}-coordinator-pod`);
    const run = find(objs, 'ConfigMap', `${F}-run`);
    assert.deepEqual(
      p.docs.slice(0, -1).map((d) => (d as K8sObject).metadata.name),
      [`${F}-run`],
    );
    const c = podDoc(p).spec.containers[0]!;
    assert.equal(c.envFrom, undefined);
    for (const [key, value] of Object.entries(run.data ?? {})) {
      const e = c.env?.find((x) => x.name === `FLAG_${key}`) as
        | { valueFrom?: { configMapKeyRef?: unknown } }
        | undefined;
      assert.deepEqual(e?.valueFrom?.configMapKeyRef, { name: `${F}-run`, key });
      assert.ok(c.args?.includes(`--${key}=${value}`), `--${key}=${value}`);
    }
  });

  it('aliases each pod by the Services that select it, and publishes no port on the host', () => {
    assert.deepEqual(byName(`${F}-coordinator-pod`).aliases, [`${F}-coordinator`]);
    assert.deepEqual(byName(`${F}-worker-1`).aliases, [`${F}-worker`]);
    assert.deepEqual([...byName(`${F}-nats-0`).aliases].sort(), [`${F}-nats`, `${F}-nats-cluster`]);
    assert.deepEqual(byName(`${F}-test`).aliases, []);
    for (const p of plan.pods) {
      for (const c of podDoc(p).spec.containers) {
        assert.equal(c.ports, undefined, p.name);
        const port = c.livenessProbe?.httpGet?.port;
        if (port !== undefined) assert.equal(typeof port, 'number', p.name);
      }
    }
  });

  it("runs NATS from the project's image with the chart's args, and its password from the -env podman secret", () => {
    const c = podDoc(byName(`${F}-nats-0`)).spec.containers[0]!;
    assert.equal(c.image, 'localhost/lora-mpt:dev');
    assert.deepEqual(c.command, ['nats-server']);
    assert.deepEqual(c.args, ['-c', '/etc/nats/nats.conf']);
    const pw = c.env?.find((e) => e.name === 'NATS_PASSWORD') as unknown as {
      valueFrom: { secretKeyRef: unknown };
    };
    assert.deepEqual(pw.valueFrom.secretKeyRef, {
      name: `${F}-auth${ENV_SECRET_SUFFIX}`,
      key: 'nats-password',
    });
  });

  it('stores the Secret decoded for volumes and as its data map for env, and marks secret volumes not optional', () => {
    const secret = find(objs, 'Secret', `${F}-auth`).data ?? {};
    const forVolumes = plan.secrets.find((s) => s.name === `${F}-auth`);
    const forEnv = plan.secrets.find((s) => s.name === `${F}-auth${ENV_SECRET_SUFFIX}`);
    const decoded = (JSON.parse(forVolumes!.content) as { data: Record<string, string> }).data;
    assert.equal(decoded['run-token'], Buffer.from(secret['run-token']!, 'base64').toString());
    assert.match(decoded['ca.crt']!, /^-----BEGIN CERTIFICATE-----/);
    assert.deepEqual(JSON.parse(forEnv!.content), secret);
    for (const p of plan.pods)
      for (const v of podDoc(p).spec.volumes ?? [])
        if (v.secret) assert.equal(v.secret.optional, false, p.name);
  });

  it('mounts a secret volume with items from a podman secret holding just those keys under their paths', () => {
    const secret = find(objs, 'Secret', `${F}-auth`).data ?? {};
    const auth = podDoc(byName(`${F}-test`)).spec.volumes?.find((v) => v.name === 'auth')?.secret;
    assert.match(auth?.secretName ?? '', new RegExp(`^${F}-auth-items-[0-9a-f]{8}$`));
    const held = plan.secrets.find((s) => s.name === auth?.secretName);
    const data = (JSON.parse(held!.content) as { data: Record<string, string> }).data;
    assert.deepEqual(Object.keys(data).sort(), ['nats-ca.crt', 'nats-password']);
    assert.equal(data['nats-password'], Buffer.from(secret['nats-password']!, 'base64').toString());
    // The coordinator mounts only its own keys too (test/deploy/chart-secret-mounts.test.ts): its
    // own podman secret, with its server key and no NATS server key.
    const coordinator = podDoc(byName(`${F}-coordinator-pod`)).spec.volumes?.find((v) => v.name === 'auth');
    assert.match(coordinator?.secret?.secretName ?? '', new RegExp(`^${F}-auth-items-[0-9a-f]{8}$`));
    assert.notEqual(coordinator?.secret?.secretName, auth?.secretName);
    const itsKeys = plan.secrets.find((s) => s.name === coordinator?.secret?.secretName);
    const its = Object.keys((JSON.parse(itsKeys!.content) as { data: Record<string, string> }).data);
    assert.ok(its.includes('coordinator.key'), its.join(', '));
    assert.ok(!its.includes('nats.key'), its.join(', '));
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expandedArgs, find, type K8sObject, podTemplates, render } from './chart.ts';

const INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
const AUTH = '/etc/lora-mpt/auth/';
/** Keys no pod but the coordinator (or NATS) may see, and one no pod may see. */
const COORDINATOR_ONLY = ['coordinator.key', 'coordinator.crt'];
const NATS_ONLY = ['nats.key', 'nats.crt'];

interface SecretVolume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[] };
}

/** Each pod template's mounted items of the auth Secret, and the auth files its containers name. */
function authMounts(objs: K8sObject[], workers: number) {
  return podTemplates(objs).map(({ owner, spec }) => {
    const volumes = (spec.volumes ?? []) as SecretVolume[];
    const auth = volumes.filter((v) => v.secret?.secretName?.endsWith('-auth'));
    const items = auth.flatMap((v) => {
      assert.ok(v.secret?.items, `${owner}: volume ${v.name} mounts the whole auth Secret (no items)`);
      return v.secret.items.map((i) => i.key);
    });
    const used = new Set<string>();
    for (const c of spec.containers) {
      for (let i = 0; i < workers; i++) {
        for (const a of expandedArgs(c, objs, { [INDEX]: String(i) }))
          if (a.startsWith(AUTH)) used.add(a.slice(AUTH.length));
      }
    }
    return { owner, items, used };
  });
}

// Each pod mounts only the Secret items it needs (issue #23: worker pods mounted coordinator.key,
// nats.key and every other credential of the run).
describe('the auth Secret in each pod', () => {
  for (const [what, set, apiVersions] of [
    ['two Jobs', ['workers.replicas=3'], []],
    ['a JobSet', ['workers.replicas=3'], ['jobset.x-k8s.io/v1alpha2']],
  ] as const) {
    it(`mounts in every pod (${what}) the items its arguments read and nothing of another role`, () => {
      const objs = render({ set: [...set], apiVersions: [...apiVersions] });
      const secretKeys = Object.keys(find(objs, 'Secret', 'demo-lora-mpt-auth').data ?? {});
      const mounts = authMounts(objs, 3);
      const roles = mounts.filter((m) => m.items.length > 0);
      assert.ok(roles.length >= 3, `coordinator, workers and NATS pods: ${roles.map((m) => m.owner).join()}`);
      for (const m of roles) {
        for (const key of m.items)
          assert.ok(secretKeys.includes(key), `${m.owner}: ${key} is not in the Secret`);
        for (const key of m.used)
          assert.ok(m.items.includes(key), `${m.owner} reads ${key} but does not mount it`);
        assert.ok(!m.items.includes('ca.key'), `${m.owner}: the CA key`);
        const isCoordinator = m.items.includes('coordinator.key');
        const isNats = m.items.includes('nats.key');
        assert.ok(!(isCoordinator && isNats), m.owner);
        if (!isCoordinator)
          for (const k of COORDINATOR_ONLY) assert.ok(!m.items.includes(k), `${m.owner}: ${k}`);
        if (!isNats) for (const k of NATS_ONLY) assert.ok(!m.items.includes(k), `${m.owner}: ${k}`);
        // Every item is read by the pod (args, or NATS's own config for its certificate).
        if (!isNats)
          for (const key of m.items)
            assert.ok(m.used.has(key), `${m.owner} mounts ${key} but never reads it`);
      }
      const workers = roles.filter((m) => [...m.used].some((k) => /-worker-\d+\.key$/.test(k)));
      assert.ok(workers.length > 0);
      for (const w of workers) {
        assert.ok(!w.items.includes('coordinator.key'), `${w.owner} gets the coordinator's key`);
        assert.deepEqual(
          w.items.filter((k) => k.endsWith('.key')).sort(),
          [0, 1, 2].map((i) => `demo-lora-mpt-worker-${i}.key`),
        );
      }
    });
  }
});

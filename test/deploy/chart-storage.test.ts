import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { find, type K8sObject, podTemplates, render, renderError, renderNotes } from './chart.ts';

// storage.accessModes and storage.existingClaim (issue 24 item 2): the claim, the pods' affinity, NOTES.
interface Affinity {
  podAffinity?: {
    requiredDuringSchedulingIgnoredDuringExecution?: {
      labelSelector: { matchLabels: Record<string, string>; matchExpressions: unknown[] };
      topologyKey: string;
    }[];
  };
  nodeAffinity?: unknown;
}
const affinityOf = (objs: K8sObject[], owner: string) =>
  (podTemplates(objs).find((p) => p.owner === owner)?.spec.affinity ?? {}) as Affinity;
const RUN_PODS = ['Job/demo-lora-mpt-coordinator', 'Job/demo-lora-mpt-worker'];
const SAME_NODE = {
  labelSelector: {
    matchLabels: { 'app.kubernetes.io/instance': 'demo' },
    matchExpressions: [
      { key: 'app.kubernetes.io/component', operator: 'In', values: ['coordinator', 'worker'] },
    ],
  },
  topologyKey: 'kubernetes.io/hostname',
};
const claimModes = (objs: K8sObject[]) =>
  (find(objs, 'PersistentVolumeClaim', 'demo-lora-mpt-workspace').spec as { accessModes: string[] })
    .accessModes;

describe('the run volume of helm/lora-mpt', () => {
  it('is ReadWriteMany by default, with no pod affinity: pods may run on any node', () => {
    const objs = render();
    assert.deepEqual(claimModes(objs), ['ReadWriteMany']);
    for (const owner of RUN_PODS) assert.deepEqual(affinityOf(objs, owner), {}, owner);
  });

  it('puts every coordinator and worker pod on one node when the volume is ReadWriteOnce', () => {
    for (const jobSet of [false, true]) {
      const objs = render({ set: ['storage.accessModes={ReadWriteOnce}', `jobSet.enabled=${jobSet}`] });
      assert.deepEqual(claimModes(objs), ['ReadWriteOnce']);
      const owners = podTemplates(objs).map((p) => p.owner);
      for (const owner of owners.filter((o) => !o.includes('nats'))) {
        assert.deepEqual(
          affinityOf(objs, owner),
          { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [SAME_NODE] } },
          owner,
        );
      }
      // NATS does not mount the volume: it keeps spreading over nodes.
      const nats = podTemplates(objs).find((p) => p.owner === 'StatefulSet/demo-lora-mpt-nats');
      assert.equal(nats?.spec.affinity, undefined);
    }
  });

  it("keeps the operator's own affinity terms beside the one ReadWriteOnce adds", () => {
    const own = { key: 'gpu', operator: 'In', values: ['a100'] };
    const objs = render({
      set: [
        'storage.accessModes={ReadWriteOnce}',
        `workers.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=${own.key}`,
        'workers.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=In',
        'workers.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values={a100}',
        'workers.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey=zone',
        'workers.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels.app=cache',
      ],
    });
    const a = affinityOf(objs, 'Job/demo-lora-mpt-worker');
    assert.deepEqual(a.nodeAffinity, {
      requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [own] }] },
    });
    assert.deepEqual(a.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution, [
      { topologyKey: 'zone', labelSelector: { matchLabels: { app: 'cache' } } },
      SAME_NODE,
    ]);
  });

  it('adds no affinity when ReadWriteMany is among the modes', () => {
    const objs = render({ set: ['storage.accessModes={ReadWriteMany,ReadWriteOnce}'] });
    assert.deepEqual(claimModes(objs), ['ReadWriteMany', 'ReadWriteOnce']);
    for (const owner of RUN_PODS) assert.deepEqual(affinityOf(objs, owner), {}, owner);
  });

  it('refuses access modes that cannot hold a run, misspelt ones and an empty list', () => {
    for (const bad of ['{ReadOnlyMany}', '{ReadWriteOncePod}', '{ReadWriteonce}', 'null', 'ReadWriteOnce']) {
      const err = renderError({ set: [`storage.accessModes=${bad}`] });
      assert.match(err ?? 'rendered', /storage\.accessModes|accessModes/, bad);
    }
    assert.match(renderError({ set: ['storage.accessModes={}'] }) ?? 'rendered', /accessModes/);
  });

  it('mounts a prepared claim with storage.existingClaim and creates no PVC, affinity following its modes', () => {
    const objs = render({ set: ['storage.existingClaim=prepared', 'storage.accessModes={ReadWriteOnce}'] });
    assert.ok(!objs.some((o) => o.kind === 'PersistentVolumeClaim'));
    for (const { owner, spec } of podTemplates(objs).filter((p) => !p.owner.includes('nats'))) {
      const v = spec.volumes?.find((x) => x.name === 'workspace');
      assert.deepEqual(v?.persistentVolumeClaim, { claimName: 'prepared' }, owner);
      assert.deepEqual(affinityOf(objs, owner).podAffinity?.requiredDuringSchedulingIgnoredDuringExecution, [
        SAME_NODE,
      ]);
    }
  });

  it('says in NOTES how to see and fix a claim that stays Pending, and that ReadWriteOnce means one node', () => {
    const rwx = renderNotes({ namespace: 'ml' });
    assert.match(rwx, /kubectl -n ml describe pvc demo-lora-mpt-workspace/);
    assert.match(rwx, /no storage class able to provision ReadWriteMany in the default class/);
    assert.match(rwx, /or storage\.accessModes=\{ReadWriteOnce\}/);
    assert.doesNotMatch(rwx, /one node at a time/);
    const rwo = renderNotes({ set: ['storage.accessModes={ReadWriteOnce}', 'workers.replicas=4'] });
    assert.match(
      rwo,
      /The volume is ReadWriteOnce: .*one node at a time, so the coordinator and every worker\nrun on one node/,
    );
    assert.match(rwo, /That node needs 4 free GPU\(s\)/);
    assert.doesNotMatch(rwo, /or storage\.accessModes=/);
    const existing = renderNotes({ set: ['storage.existingClaim=prepared'] });
    assert.match(existing, /kubectl -n default get pvc prepared\n/);
    assert.match(existing, /The claim prepared must exist in default and be Bound/);
  });
});

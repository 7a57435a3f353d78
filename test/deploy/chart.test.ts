import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { coordinatorFlags } from '../../src/cli/coordinator.ts';
import { parseFlags } from '../../src/cli/flags.ts';
import { workerFlags } from '../../src/cli/worker.ts';
import { processRegistry } from '../../src/metrics/registry.ts';
import { checkRunToken } from '../../src/protocol/credentials.ts';
import { certificateRunRefusal } from '../../src/protocol/run-binding.ts';
import { alertRules, dashboardExpressions } from '../support/dashboard.ts';
import {
  chartDir,
  expandedArgs,
  find,
  helm,
  type JobSpec,
  type K8sObject,
  podTemplates,
  type RenderOptions,
  render,
  renderError,
} from './chart.ts';

const INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
const kinds = (objs: K8sObject[]) => objs.map((o) => o.kind).sort();
const jobSpec = (objs: K8sObject[], name: string) => find(objs, 'Job', name).spec as unknown as JobSpec;
const replicatedJobs = (objs: K8sObject[]) =>
  (
    find(objs, 'JobSet', 'demo-lora-mpt').spec as {
      replicatedJobs: { name: string; template: { spec: JobSpec } }[];
    }
  ).replicatedJobs;

describe('Helm chart helm/lora-mpt', () => {
  it('passes helm lint', () => {
    assert.match(helm('lint', chartDir), /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('renders a run as a coordinator Job and an Indexed worker Job, with NATS, storage, dashboard and policies', () => {
    assert.deepEqual(kinds(render()), [
      'ConfigMap',
      'ConfigMap',
      'ConfigMap',
      'Job',
      'Job',
      'NetworkPolicy',
      'NetworkPolicy',
      'NetworkPolicy',
      'PersistentVolumeClaim',
      'Pod',
      'PodDisruptionBudget',
      'Secret',
      'Service',
      'Service',
      'Service',
      'Service',
      'ServiceAccount',
      'StatefulSet',
    ]);
  });

  it('runs one worker pod per GPU: Indexed, parallelism = completions = workers.replicas', () => {
    const w = jobSpec(render({ set: ['workers.replicas=5'] }), 'demo-lora-mpt-worker');
    assert.equal(w.completionMode, 'Indexed');
    assert.equal(w.completions, 5);
    assert.equal(w.parallelism, 5);
    const c = w.template.spec.containers[0]!;
    assert.equal(c.resources?.limits?.['nvidia.com/gpu'], 1);
    assert.equal(c.env?.find((e) => e.name === 'WORKER_INDEX')?.valueFrom?.fieldRef?.fieldPath, INDEX);
  });

  it('replaces a failed pod but fails the Job at once on a permanent error, and never restarts a pod that exited 0', () => {
    const objs = render({ set: ['coordinator.backoffLimit=2', 'workers.backoffLimit=7'] });
    for (const [name, container, codes, limit] of [
      ['demo-lora-mpt-coordinator', 'coordinator', [2], 2],
      ['demo-lora-mpt-worker', 'worker', [2, 3], 7],
    ] as const) {
      const j = jobSpec(objs, name);
      // restartPolicy Never is what the Job API requires of a Job with a podFailurePolicy; a pod
      // that exits 0 is complete and is not run again.
      assert.equal(j.template.spec.restartPolicy, 'Never', name);
      assert.equal(j.backoffLimit, limit, name);
      assert.equal(j.podReplacementPolicy, 'Failed', name);
      const [fail, ignore] = j.podFailurePolicy!.rules;
      assert.deepEqual(fail, {
        action: 'FailJob',
        onExitCodes: { containerName: container, operator: 'In', values: codes },
      });
      assert.deepEqual(ignore, {
        action: 'Ignore',
        onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }],
      });
      assert.equal(j.template.spec.containers[0]!.name, container);
    }
  });

  it('ends the worker Job with the first worker that finishes where Kubernetes has successPolicy (>= 1.31)', () => {
    assert.deepEqual(jobSpec(render({ kubeVersion: '1.31.0' }), 'demo-lora-mpt-worker').successPolicy, {
      rules: [{ succeededCount: 1 }],
    });
    assert.equal(jobSpec(render({ kubeVersion: '1.30.4' }), 'demo-lora-mpt-worker').successPolicy, undefined);
    assert.equal(jobSpec(render(), 'demo-lora-mpt-coordinator').successPolicy, undefined);
  });

  it('gives the coordinator and worker arguments that the lora-mpt commands accept', () => {
    const objs = render({
      set: [
        'run.training.group_by_length=false',
        'run.training.learning_rate=2e-4',
        'run.training.num_epochs=1',
        'coordinator.minWorkers=4',
      ],
    });
    const coordinator = jobSpec(objs, 'demo-lora-mpt-coordinator').template.spec.containers[0]!;
    const cArgs = expandedArgs(coordinator, objs);
    assert.equal(cArgs[0], 'coordinator');
    const c = parseFlags(coordinatorFlags, cArgs.slice(1));
    assert.equal(c.base_model, '/workspace/models/mpt-7b-instruct');
    assert.equal(c.output_dir, '/workspace/outputs/lora-mpt');
    // No target flag by default: the coordinator takes the family's PEFT default, for this MPT [Wqkv]
    // (test/deploy/chart-llama.test.ts resolves it on real config.json files of both families).
    assert.equal(c.lora_target_modules, undefined);
    assert.equal(c.learning_rate, 2e-4);
    assert.equal(c.num_epochs, 1);
    assert.equal(c.batch_size, 128);
    assert.equal(c.group_by_length, false);
    assert.equal(c.min_workers, 4);
    assert.equal(c.nats, 'nats://demo-lora-mpt-nats:4222');
    const worker = jobSpec(objs, 'demo-lora-mpt-worker').template.spec.containers[0]!;
    const wArgs = expandedArgs(worker, objs, { [INDEX]: '3' });
    assert.equal(wArgs[0], 'worker');
    const w = parseFlags(workerFlags, wArgs.slice(1));
    assert.equal(w.coordinator, 'demo-lora-mpt-coordinator:50051');
    assert.equal(w.worker_id, 'demo-lora-mpt-worker-3');
    assert.equal(w.backend, 'tensorflow');
    // Never --insecure: mutual TLS, the worker's own certificate (its id as common name), the token.
    assert.equal(c.insecure, false);
    assert.equal(w.insecure, false);
    assert.equal(c.tls_client_ca, '/etc/lora-mpt/auth/ca.crt');
    assert.equal(c.run_token_file, '/etc/lora-mpt/auth/run-token');
    assert.equal(w.tls_cert, '/etc/lora-mpt/auth/demo-lora-mpt-worker-3.crt');
    assert.equal(w.token_file, '/etc/lora-mpt/auth/run-token');
    assert.equal(c.metrics_host, '0.0.0.0');
    assert.equal(w.metrics_host, '0.0.0.0');
  });

  it('makes the run credentials: a CA, the coordinator certificate for its Service, one per worker id', () => {
    const objs = render({ set: ['workers.replicas=3'] });
    const data = find(objs, 'Secret', 'demo-lora-mpt-auth').data as Record<string, string>;
    const pem = (k: string) => Buffer.from(data[k]!, 'base64').toString();
    const ca = new X509Certificate(pem('ca.crt'));
    assert.ok(ca.ca);
    const server = new X509Certificate(pem('coordinator.crt'));
    assert.ok(server.checkIssued(ca) && server.verify(ca.publicKey));
    assert.equal(server.checkHost('demo-lora-mpt-coordinator'), 'demo-lora-mpt-coordinator');
    for (let i = 0; i < 3; i++) {
      const leaf = new X509Certificate(pem(`demo-lora-mpt-worker-${i}.crt`));
      assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), `worker ${i}`);
      assert.equal(leaf.subject, `CN=demo-lora-mpt-worker-${i}`);
      assert.ok(leaf.checkPrivateKey(createPrivateKey(pem(`demo-lora-mpt-worker-${i}.key`))));
      // Helm's sha256sum names the run as the coordinator computes it from the run token.
      assert.equal(certificateRunRefusal(leaf.subjectAltName, pem('run-token')), undefined, `worker ${i}`);
      assert.match(certificateRunRefusal(leaf.subjectAltName, 'x'.repeat(48)) ?? '', /another run/);
    }
    assert.equal(checkRunToken(pem('run-token'), 'run-token'), pem('run-token'));
    const own = render({ set: ['auth.existingSecret=mine'] });
    assert.ok(!own.some((o) => o.kind === 'Secret' && o.metadata.name === 'demo-lora-mpt-auth'));
    const volumes = jobSpec(own, 'demo-lora-mpt-worker').template.spec.volumes as {
      secret?: { secretName: string };
    }[];
    assert.ok(volumes.some((v) => v.secret?.secretName === 'mine'));
  });

  it('draws NATS passwords that start with a letter, which nats-server reads from $NATS_PASSWORD as a string', () => {
    // nats-server parses an environment value that starts with a digit as a number where it can
    // ("3e7…"): about one draw in twenty of a plain randAlphaNum 32 stopped the server.
    for (let i = 0; i < 8; i++) {
      const data = find(render({}), 'Secret', 'demo-lora-mpt-auth').data as Record<string, string>;
      const password = Buffer.from(data['nats-password']!, 'base64').toString();
      assert.match(password, /^[A-Za-z][A-Za-z0-9]{31}$/);
    }
  });

  it("runs a NATS whose config serves only the run's user, over TLS, on lora.> only", async () => {
    const objs = render({ set: ['nats.replicas=1'] });
    const data = find(objs, 'Secret', 'demo-lora-mpt-auth').data as Record<string, string>;
    const secret = (k: string) => Buffer.from(data[k]!, 'base64').toString();
    const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-chart-nats-'));
    for (const k of ['nats.crt', 'nats.key', 'nats-ca.crt']) writeFileSync(join(dir, k), secret(k));
    const conf = find(objs, 'ConfigMap', 'demo-lora-mpt-nats')
      .data!['nats.conf']!.replaceAll('/etc/nats-tls/', `${dir}/`)
      .replace('port: 4222', 'port: -1')
      .replace('http: 8222', 'http: 127.0.0.1:-1');
    writeFileSync(join(dir, 'nats.conf'), conf);
    // The chart's own config file, with the password from the Secret in the environment, as the pod runs it.
    const server = spawn('nats-server', ['-c', join(dir, 'nats.conf')], {
      env: { ...process.env, NATS_PASSWORD: secret('nats-password') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let log = '';
        server.stderr.on('data', (b: Buffer) => {
          log += b.toString();
          const m = /Listening for client connections on [^\s]+:(\d+)/.exec(log);
          if (m && /Server is ready/.test(log)) resolve(Number(m[1]));
        });
        server.once('exit', (code) => reject(new Error(`nats-server exited ${code}:\n${log}`)));
      });
      const tls = { caFile: join(dir, 'nats-ca.crt'), servername: 'demo-lora-mpt-nats' } as {
        caFile: string;
      };
      const servers = `nats://127.0.0.1:${port}`;
      const nc = await connect({ servers, tls, user: 'lora-mpt', pass: secret('nats-password') });
      const errors: string[] = [];
      nc.subscribe('other.>', {
        callback: (err) => {
          if (err) errors.push(err.message);
        },
      });
      const got = new Promise<string>((resolve) =>
        nc.subscribe('lora.run.x', { callback: (_e, m) => resolve(m.string()) }),
      );
      nc.publish('lora.run.x', 'ok');
      assert.equal(await got, 'ok');
      await nc.flush();
      await nc.close();
      assert.match(errors.join(' '), /Permissions Violation/i);
      await assert.rejects(
        connect({ servers, tls, user: 'lora-mpt', pass: 'wrong', maxReconnectAttempts: 0 }),
      );
      await assert.rejects(
        connect({ servers, user: 'lora-mpt', pass: secret('nats-password'), maxReconnectAttempts: 0 }),
      );
    } finally {
      server.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes list and number flags from a values file as the CLI reads them', () => {
    const objs = render({ valuesFiles: ['existing-claim.yaml'], set: ['nats.maxPayload=8388608'] });
    const c = parseFlags(
      coordinatorFlags,
      expandedArgs(jobSpec(objs, 'demo-lora-mpt-coordinator').template.spec.containers[0]!, objs).slice(1),
    );
    assert.deepEqual(c.lora_target_modules, ['Wqkv', 'out_proj']);
    assert.equal(c.learning_rate, 2e-4);
    assert.equal(c.train_on_inputs, false);
    assert.equal(c.val_set_size, 2000);
    assert.match(find(objs, 'ConfigMap', 'demo-lora-mpt-nats').data!['nats.conf']!, /max_payload: 8388608\n/);
  });

  it('renders one JobSet instead of the two Jobs when the cluster serves jobset.x-k8s.io/v1alpha2 or when forced', () => {
    const auto = render({ apiVersions: ['jobset.x-k8s.io/v1alpha2'] });
    assert.ok(!kinds(auto).includes('Job'));
    const spec = find(auto, 'JobSet', 'demo-lora-mpt').spec as Record<string, unknown>;
    assert.deepEqual(spec.successPolicy, { operator: 'All', targetReplicatedJobs: ['coordinator'] });
    const [coordinator, worker] = replicatedJobs(auto);
    assert.equal(coordinator!.name, 'coordinator');
    assert.equal(worker!.template.spec.completionMode, 'Indexed');
    assert.deepEqual(worker!.template.spec, jobSpec(render(), 'demo-lora-mpt-worker'));
    assert.ok(kinds(render({ set: ['jobSet.enabled=true'] })).includes('JobSet'));
    assert.ok(
      !kinds(render({ set: ['jobSet.enabled=false'], apiVersions: ['jobset.x-k8s.io/v1alpha2'] })).includes(
        'JobSet',
      ),
    );
    assert.ok(!kinds(render()).includes('JobSet'));
  });

  it('runs every pod as non-root with a read-only root filesystem, no capabilities and no API token', () => {
    const pods = podTemplates(render({ set: ['jobSet.enabled=true'] })).concat(podTemplates(render()));
    assert.equal(pods.length, 6); // NATS, coordinator, worker; as Jobs and as a JobSet
    for (const { owner, spec } of pods) {
      assert.equal(spec.automountServiceAccountToken, false, owner);
      assert.equal(spec.serviceAccountName, 'demo-lora-mpt', owner);
      assert.deepEqual(
        spec.securityContext,
        {
          runAsNonRoot: true,
          runAsUser: 1000,
          runAsGroup: 1000,
          fsGroup: 1000,
          fsGroupChangePolicy: 'OnRootMismatch',
          seccompProfile: { type: 'RuntimeDefault' },
        },
        owner,
      );
      for (const c of spec.containers) {
        assert.deepEqual(
          c.securityContext,
          { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
          `${owner} ${c.name}`,
        );
        assert.ok(c.startupProbe, `${owner} ${c.name} has a startupProbe`);
        const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
        if (c.name !== 'nats')
          assert.ok(spec.volumes?.find((v) => v.name === tmp?.name)?.emptyDir !== undefined, owner);
      }
    }
    const sa = find(render(), 'ServiceAccount', 'demo-lora-mpt') as unknown as {
      automountServiceAccountToken: boolean;
    };
    assert.equal(sa.automountServiceAccountToken, false);
  });

  it('schedules workers with the affinity, spread, tolerations, priority and pull secrets it is given', () => {
    const objs = render({ valuesFiles: ['eight-gpus.yaml'] });
    const pod = jobSpec(objs, 'demo-lora-mpt-worker').template.spec;
    assert.equal(jobSpec(objs, 'demo-lora-mpt-worker').parallelism, 8);
    assert.equal(pod.priorityClassName, 'training-high');
    assert.deepEqual(pod.imagePullSecrets, [{ name: 'regcred' }, { name: 'mirror-cred' }]);
    assert.deepEqual(pod.nodeSelector, { 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB' });
    assert.equal(pod.tolerations?.length, 2);
    assert.equal(pod.topologySpreadConstraints?.length, 1);
    assert.ok(pod.affinity);
    assert.equal(pod.containers[0]!.image, 'registry.example.com/ml/lora-mpt:0.1.0-gpu');
    assert.deepEqual(pod.containers[0]!.env?.at(-1), { name: 'HF_HUB_OFFLINE', value: '1' });
    const coordinator = jobSpec(objs, 'demo-lora-mpt-coordinator').template.spec;
    assert.equal(coordinator.priorityClassName, 'training-high');
    assert.equal(coordinator.tolerations, undefined);
  });

  it('makes a worker pod given a GPU require it (LORA_MPT_REQUIRE_GPU), with TF32 only when asked', () => {
    const env = (set: string[] = []) =>
      jobSpec(render({ set }), 'demo-lora-mpt-worker').template.spec.containers[0]!.env ?? [];
    const named = (e: { name: string; value?: string }[], name: string) =>
      e.find((x) => x.name === name)?.value;
    assert.equal(named(env(), 'LORA_MPT_REQUIRE_GPU'), '1');
    assert.equal(named(env(), 'LORA_MPT_TF32'), undefined);
    assert.equal(named(env(['workers.tf32=true']), 'LORA_MPT_TF32'), '1');
    const cpu = env([
      'workers.resources.requests.nvidia\\.com/gpu=null',
      'workers.resources.limits.nvidia\\.com/gpu=null',
    ]);
    assert.equal(named(cpu, 'LORA_MPT_REQUIRE_GPU'), undefined, 'CPU workers need no GPU');
  });

  it('renders every extension point an operator sets: labels, digest, args, env, volumes, init containers, runtime class, NATS placement, relabelings', () => {
    const objs = render({ valuesFiles: ['extensions.yaml'] });
    const coordinator = jobSpec(objs, 'demo-lora-mpt-coordinator').template;
    const worker = jobSpec(objs, 'demo-lora-mpt-worker').template;
    const nats = (find(objs, 'StatefulSet', 'demo-lora-mpt-nats').spec as unknown as JobSpec).template;
    for (const pod of [coordinator, worker, nats]) {
      assert.equal(pod.metadata.labels?.['kueue.x-k8s.io/queue-name'], 'gpu-queue');
      assert.equal(pod.metadata.labels?.['app.kubernetes.io/name'], 'lora-mpt', "the chart's label wins");
      assert.deepEqual(pod.metadata.annotations, { 'cost-centre': 'ml-research' });
    }
    const image =
      'registry.example.com/ml/lora-mpt@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945';
    assert.equal(coordinator.spec.containers[0]!.image, image);
    assert.equal(worker.spec.containers[0]!.image, image);
    assert.deepEqual(coordinator.spec.containers[0]!.args!.slice(-2), ['--log_level', 'debug']);
    assert.deepEqual(worker.spec.containers[0]!.args!.slice(-2), ['--peak_tflops', '312']);
    assert.ok(coordinator.spec.volumes?.some((v) => v.name === 'certs-extra'));
    assert.ok(coordinator.spec.containers[0]!.volumeMounts?.some((m) => m.mountPath === '/etc/corp-ca'));
    assert.equal(coordinator.spec.initContainers?.[0]?.name, 'wait-for-model');
    assert.equal(worker.spec.runtimeClassName, 'nvidia');
    assert.ok(worker.spec.containers[0]!.env?.some((e) => e.name === 'NCCL_DEBUG'));
    assert.ok(worker.spec.containers[0]!.volumeMounts?.some((m) => m.mountPath === '/dev/shm'));
    assert.deepEqual(nats.spec.nodeSelector, { 'node-role': 'system' });
    assert.equal(nats.spec.tolerations?.length, 1);
    const endpoint = (
      find(objs, 'ServiceMonitor', 'demo-lora-mpt').spec as { endpoints: Record<string, unknown>[] }
    ).endpoints[0]!;
    assert.deepEqual(endpoint.relabelings, [{ targetLabel: 'cluster', replacement: 'gpu-east' }]);
    assert.equal((endpoint.metricRelabelings as unknown[]).length, 1);
  });

  it('still refuses a misspelt extension point (the schema stays strict)', () => {
    for (const set of [
      'workers.extraArg={--x}',
      'podLabel.a=b',
      'nats.toleration[0].key=x',
      'image.digest=latest',
    ]) {
      assert.match(
        renderError({ set: [set] }) ?? 'rendered',
        /values don't meet the specifications|schema/i,
        set,
      );
    }
  });

  it('keeps a NATS cluster of three behind a disruption budget, or uses an external NATS', () => {
    const objs = render();
    const conf = find(objs, 'ConfigMap', 'demo-lora-mpt-nats').data!['nats.conf']!;
    assert.equal((conf.match(/nats:\/\/demo-lora-mpt-nats-\d/g) ?? []).length, 3);
    assert.deepEqual(
      (find(objs, 'PodDisruptionBudget', 'demo-lora-mpt-nats').spec as { maxUnavailable: number })
        .maxUnavailable,
      1,
    );
    const ext = render({ valuesFiles: ['external-nats.yaml'] });
    assert.ok(!ext.some((o) => o.metadata.name.includes('-nats')));
    assert.ok(
      jobSpec(ext, 'demo-lora-mpt-worker').template.spec.containers[0]!.args!.includes(
        'nats://nats.messaging.svc:4222',
      ),
    );
    assert.ok(!kinds(render({ valuesFiles: ['existing-claim.yaml'] })).includes('PodDisruptionBudget'));
  });

  it('adds a ServiceMonitor over the coordinator and worker Services when asked', () => {
    const objs = render({ valuesFiles: ['monitoring.yaml'] });
    const sm = find(objs, 'ServiceMonitor', 'demo-lora-mpt');
    assert.equal(sm.metadata.labels?.release, 'kube-prometheus-stack');
    const scraped = objs.filter(
      (o) =>
        o.kind === 'Service' &&
        (o.spec as { ports: { name: string }[] }).ports.some((p) => p.name === 'metrics'),
    );
    assert.deepEqual(scraped.map((s) => s.metadata.labels?.['app.kubernetes.io/component']).sort(), [
      'coordinator',
      'worker',
    ]);
  });

  it('adds a PrometheusRule with exactly the promtool-tested alert rules when asked, none by default', () => {
    assert.ok(!kinds(render()).includes('PrometheusRule'));
    const rule = find(render({ valuesFiles: ['monitoring.yaml'] }), 'PrometheusRule', 'demo-lora-mpt');
    assert.equal(rule.metadata.labels?.release, 'kube-prometheus-stack');
    const groups = (rule.spec as { groups: { rules: unknown[] }[] }).groups;
    assert.deepEqual(
      groups.flatMap((g) => g.rules),
      alertRules(),
      'expressions, durations, labels and annotations as in files/alerts.yaml',
    );
  });

  it('gives each release its own dashboard uid and title (or the uid it is given), the rest of the JSON as shipped', () => {
    const dashboard = (o: RenderOptions = {}) =>
      JSON.parse(find(render(o), 'ConfigMap', 'demo-lora-mpt-dashboard').data!['lora-mpt.json']!) as Record<
        string,
        unknown
      >;
    const shipped = JSON.parse(readFileSync(join(chartDir, 'files', 'dashboard.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const mine = dashboard();
    assert.equal(mine.uid, 'lora-mpt-demo');
    assert.equal(mine.title, 'lora-mpt training (demo)');
    assert.deepEqual({ ...mine, uid: shipped.uid, title: shipped.title }, shipped);
    assert.equal(dashboard({ set: ['metrics.grafanaDashboard.uid=team-a-llm'] }).uid, 'team-a-llm');
    assert.match(renderError({ set: ['metrics.grafanaDashboard.uid=has spaces'] }) ?? '', /uid/);
  });

  it('has a dashboard and alert rules that query only metric names src/metrics declares', async () => {
    // Fast and static; test/e2e/observability.test.ts evaluates each expression against a real run.
    const declared = new Set<string>();
    for (const m of (await processRegistry('worker', {}).metrics()).matchAll(/^# TYPE (\S+) /gm)) {
      declared.add(m[1]!);
    }
    const metricsDir = fileURLToPath(new URL('../../src/metrics/', import.meta.url));
    for (const file of readdirSync(metricsDir)) {
      for (const m of readFileSync(join(metricsDir, file), 'utf8').matchAll(/'(lora_mpt_[a-z_]+)'/g))
        declared.add(m[1]!);
    }
    const queried = [
      ...dashboardExpressions().map((e) => ({ where: `panel "${e.panel}"`, expr: e.expr })),
      ...alertRules().map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
    ];
    assert.ok(queried.length >= 20);
    for (const { where, expr } of queried) {
      for (const m of expr.matchAll(/lora_mpt_[a-z_]+/g)) {
        const name = m[0].replace(/_(bucket|sum|count)$/, '');
        assert.ok(
          declared.has(name) || declared.has(m[0]),
          `${where} queries ${m[0]}, which src/metrics does not declare`,
        );
      }
    }
  });
});

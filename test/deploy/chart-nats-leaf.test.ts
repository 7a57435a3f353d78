import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { parseFlags } from '../../src/cli/flags.ts';
import { workerFlags } from '../../src/cli/worker.ts';
import { type Container, expandedArgs, find, type JobSpec, type K8sObject, render } from './chart.ts';

// nats.leaf: a NATS leaf server per worker node (a DaemonSet), joined to the cluster servers with
// the run's credentials; workers reach their node's through a node-local Service.

const INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
const workerOf = (objs: K8sObject[]) =>
  (find(objs, 'Job', 'demo-lora-mpt-worker').spec as unknown as JobSpec).template.spec.containers[0]!;
const leafSet = ['nats.leaf.enabled=true', 'nats.replicas=1'];

/** Starts nats-server on `conf` with `env`; resolves with its client port once it logs `ready`. */
function natsServer(conf: string, env: Record<string, string>, ready: RegExp, procs: ChildProcess[]) {
  // A private mount namespace whose /etc/hosts names 127.0.0.1 demo-lora-mpt-nats: the leaf checks
  // the cluster's certificate against the Service name, as in the cluster, without touching the host.
  const hosts = join(conf, '..', 'hosts');
  const p = spawn(
    'unshare',
    ['-m', 'sh', '-c', `mount --bind "${hosts}" /etc/hosts && exec nats-server -c "${conf}"`],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  procs.push(p);
  return new Promise<number>((resolve, reject) => {
    let log = '';
    p.stderr.on('data', (b: Buffer) => {
      log += b.toString();
      const m = /Listening for client connections on [^\s]+:(\d+)/.exec(log);
      if (m && ready.test(log)) resolve(Number(m[1]));
    });
    p.once('exit', (code) => reject(new Error(`nats-server ${conf} exited ${code}:\n${log}`)));
    setTimeout(() => reject(new Error(`nats-server ${conf} not ready after 20 s:\n${log}`)), 20_000).unref();
  });
}

describe('Helm chart: a NATS leaf server per worker node (nats.leaf)', () => {
  it('is off by default: no DaemonSet, workers name their node but use the cluster servers only', () => {
    const objs = render();
    assert.ok(!objs.some((o) => o.kind === 'DaemonSet'));
    const w = parseFlags(
      workerFlags,
      expandedArgs(workerOf(objs), objs, { 'spec.nodeName': 'gpu-a' }).slice(1),
    );
    assert.equal(w.node_name, 'gpu-a');
    assert.equal(w.node_nats_url, undefined);
  });

  it('runs a leaf DaemonSet where workers run, a node-local Service, and points each worker at it', () => {
    const objs = render({ set: [...leafSet, 'workers.nodeSelector.pool=gpu'] });
    const ds = find(objs, 'DaemonSet', 'demo-lora-mpt-nats-leaf').spec as {
      template: { spec: { nodeSelector?: unknown; tolerations?: unknown; containers: Container[] } };
    };
    assert.deepEqual(ds.template.spec.nodeSelector, { pool: 'gpu' });
    const wJob = (find(objs, 'Job', 'demo-lora-mpt-worker').spec as unknown as JobSpec).template.spec as {
      tolerations?: unknown;
    };
    assert.deepEqual(ds.template.spec.tolerations, wJob.tolerations);
    const svc = find(objs, 'Service', 'demo-lora-mpt-nats-leaf').spec as Record<string, unknown>;
    assert.equal(svc.internalTrafficPolicy, 'Local');
    const worker = workerOf(objs);
    assert.equal(
      worker.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath,
      'spec.nodeName',
    );
    const args = expandedArgs(worker, objs, { [INDEX]: '0', 'spec.nodeName': 'gpu-a' });
    const w = parseFlags(workerFlags, args.slice(1));
    assert.equal(w.node_name, 'gpu-a');
    assert.equal(w.node_nats_url, 'nats://demo-lora-mpt-nats-leaf:4222');
    assert.equal(w.nats, 'nats://demo-lora-mpt-nats:4222');
    // The certificate the leaf serves to workers names its Service.
    const data = find(objs, 'Secret', 'demo-lora-mpt-auth').data as Record<string, string>;
    const cert = new X509Certificate(Buffer.from(data['nats.crt']!, 'base64'));
    assert.match(cert.subjectAltName ?? '', /DNS:demo-lora-mpt-nats-leaf\b/);
  });

  it("joins the cluster over TLS as the run's user: a worker on the leaf and one on the cluster meet", async () => {
    const objs = render({ set: leafSet });
    const data = find(objs, 'Secret', 'demo-lora-mpt-auth').data as Record<string, string>;
    const secret = (k: string) => Buffer.from(data[k]!, 'base64').toString();
    const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-chart-leaf-'));
    const procs: ChildProcess[] = [];
    try {
      for (const k of ['nats.crt', 'nats.key', 'nats-ca.crt']) writeFileSync(join(dir, k), secret(k));
      writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost demo-lora-mpt-nats demo-lora-mpt-nats-leaf\n');
      // The rendered configs with free ports; the leaf dials the cluster's leafnode port.
      const hubConf = find(objs, 'ConfigMap', 'demo-lora-mpt-nats')
        .data!['nats.conf']!.replaceAll('/etc/nats-tls/', `${dir}/`)
        .replace('port: 4222', 'port: -1')
        .replace('http: 8222', 'http: 127.0.0.1:-1')
        .replace('port: 7422', 'port: 17422');
      assert.match(hubConf, /leafnodes \{/);
      const leafConf = find(objs, 'ConfigMap', 'demo-lora-mpt-nats-leaf')
        .data!['nats.conf']!.replaceAll('/etc/nats-tls/', `${dir}/`)
        .replace('port: 4222', 'port: -1')
        .replace('http: 8222', 'http: 127.0.0.1:-1');
      writeFileSync(join(dir, 'hub.conf'), hubConf);
      writeFileSync(join(dir, 'leaf.conf'), leafConf);
      // The leaf pod's environment, as Kubernetes expands it.
      const env = (
        find(objs, 'DaemonSet', 'demo-lora-mpt-nats-leaf').spec as {
          template: { spec: { containers: Container[] } };
        }
      ).template.spec.containers[0]!.env!;
      const password = secret('nats-password');
      const leafUrl = env
        .find((e) => e.name === 'NATS_LEAF_URL')!
        .value!.replace('$(NATS_PASSWORD)', password)
        .replace(':7422', ':17422');
      const hubPort = await natsServer(
        join(dir, 'hub.conf'),
        { NATS_PASSWORD: password },
        /Server is ready/,
        procs,
      );
      const leafPort = await natsServer(
        join(dir, 'leaf.conf'),
        { NATS_PASSWORD: password, NATS_LEAF_URL: leafUrl },
        /Leafnode connection created/,
        procs,
      );
      // Clients check each server's certificate against its Service name.
      const tlsFor = (servername: string) =>
        ({ caFile: join(dir, 'nats-ca.crt'), servername }) as { caFile: string };
      const as = { user: 'lora-mpt', pass: password };
      const leafServer = { servers: `nats://127.0.0.1:${leafPort}`, tls: tlsFor('demo-lora-mpt-nats-leaf') };
      const onLeaf = await connect({ ...leafServer, ...as });
      const onHub = await connect({
        servers: `nats://127.0.0.1:${hubPort}`,
        tls: tlsFor('demo-lora-mpt-nats'),
        ...as,
      });
      try {
        const got = new Promise<string>((resolve) =>
          onHub.subscribe('lora.run.x', { callback: (_e, m) => resolve(m.string()) }),
        );
        await onHub.flush();
        // Interest reaches the leaf asynchronously: publish until the hub's subscriber hears it.
        const timer = setInterval(() => onLeaf.publish('lora.run.x', 'through the leaf'), 50);
        assert.equal(await got, 'through the leaf');
        clearInterval(timer);
        await assert.rejects(
          connect({
            ...leafServer,
            user: 'lora-mpt',
            pass: 'wrong',
            maxReconnectAttempts: 0,
          }),
        );
      } finally {
        await Promise.all([onLeaf.close(), onHub.close()]);
      }
    } finally {
      for (const p of procs) p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
